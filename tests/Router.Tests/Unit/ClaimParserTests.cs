using System.Text;
using CallRouter.Messages;
using CallRouter.Router.Transport;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary><see cref="ClaimParser"/>: valid claims as read, and every invalid form with its exact error and what could be read to address the reply.</summary>
public sealed class ClaimParserTests
{
    private const string Id = "6f1c0000-0000-4000-8000-000000000001";
    private static readonly Guid CallId = Guid.Parse(Id);

    private static ClaimParser.Result Parse(string json) => ClaimParser.Parse(Encoding.UTF8.GetBytes(json));

    /// <summary>A claim with callId and app fine, plus <paramref name="rest"/> (a JSON fragment starting with a comma, or empty).</summary>
    private static ClaimParser.Result ParseWith(string rest) => Parse($$"""{"callId":"{{Id}}","app":"sales" """ + rest + "}");

    [Fact]
    public void A_minimal_claim_is_read_with_defaults()
    {
        var result = ParseWith("");

        Assert.Null(result.Error);
        Assert.Equal(CallId, result.CallId);
        Assert.Equal("sales", result.App);
        Assert.Equal(new ClaimCall(CallId, "sales", null, null, null, false), result.Claim);
    }

    [Fact]
    public void A_claim_with_a_target_and_app_args_is_read_whole()
    {
        var result = ParseWith(""","target":{"context":"from-app","extension":"200","priority":3},"appArgs":["vip","gold"]""");

        Assert.Null(result.Error);
        var claim = result.Claim!;
        Assert.Equal(new DialplanTarget("from-app", "200", 3), claim.Target);
        Assert.Equal(new[] { "vip", "gold" }, claim.AppArgs!);
        Assert.Null(claim.MoveToApp);
        Assert.False(claim.Control);
    }

    [Fact]
    public void A_target_without_priority_continues_at_priority_1()
    {
        Assert.Equal(new DialplanTarget("from-app", "200", 1), ParseWith(""","target":{"context":"from-app","extension":"200"}""").Claim!.Target);
        Assert.Equal(new DialplanTarget("from-app", "200", 1), ParseWith(""","target":{"context":"from-app","extension":"200","priority":null}""").Claim!.Target);
    }

    [Fact]
    public void MoveToApp_and_control_are_read()
    {
        Assert.Equal("other-app", ParseWith(""","moveToApp":"other-app","appArgs":[]""").Claim!.MoveToApp);
        Assert.Empty(ParseWith(""","moveToApp":"other-app","appArgs":[]""").Claim!.AppArgs!);
        Assert.True(ParseWith(""","control":true""").Claim!.Control);
        Assert.False(ParseWith(""","control":false""").Claim!.Control);
        var everything = ParseWith(""","control":true,"allEvents":true""").Claim!;
        Assert.Equal((true, true), (everything.Control, everything.AllEvents));
        Assert.False(ParseWith(""","control":true""").Claim!.AllEvents);
    }

    [Fact]
    public void Null_optional_fields_and_unknown_fields_are_ignored()
    {
        var result = ParseWith(""","target":null,"moveToApp":null,"appArgs":null,"control":null,"extra":{"x":1}""");

        Assert.Equal(new ClaimCall(CallId, "sales"), result.Claim);
    }

    [Fact]
    public void A_message_over_the_size_limit_is_refused_before_it_is_read()
    {
        var result = ClaimParser.Parse(new byte[Wire.MaxMessageBytes + 1]);

        Assert.Equal(new ClaimParser.Result(null, null, null, $"message is {Wire.MaxMessageBytes + 1} bytes; the limit is {Wire.MaxMessageBytes}"), result);
    }

    [Fact]
    public void Invalid_json_says_so_with_the_parser_s_message()
    {
        var result = Parse("{not json");

        Assert.Null(result.Claim);
        Assert.Null(result.CallId);
        Assert.StartsWith("not valid JSON: '", result.Error);
    }

    // Errors found before the call id is read: nothing to address the reply with.
    [Theory]
    [InlineData("[1,2,3]", "a claim must be a JSON object, not Array")]
    [InlineData("\"text\"", "a claim must be a JSON object, not String")]
    [InlineData("{\"app\":\"sales\"}", "callId is missing")]
    [InlineData("{\"callId\":null,\"app\":\"sales\"}", "callId is missing")]
    [InlineData("{\"callId\":123,\"app\":\"sales\"}", "callId must be a string, not Number")]
    [InlineData("{\"callId\":\"nope\",\"app\":\"sales\"}", "callId 'nope' is not a UUID")]
    public void Errors_before_the_call_id_carry_no_address(string json, string error)
    {
        Assert.Equal(new ClaimParser.Result(null, null, null, error), Parse(json));
    }

    [Fact]
    public void A_call_id_longer_than_the_text_limit_is_refused()
    {
        var result = Parse($$"""{"callId":"{{new string('a', ClaimParser.MaxTextLength + 1)}}","app":"sales"}""");

        Assert.Equal(new ClaimParser.Result(null, null, null, "callId is longer than 256 characters"), result);
    }

    // Errors in the app name: the call id is known, the app is not.
    [Theory]
    [InlineData("", "app is missing")]
    [InlineData(",\"app\":null", "app is missing")]
    [InlineData(",\"app\":7", "app must be a string, not Number")]
    [InlineData(",\"app\":\"bad.name\"", "app 'bad.name' is not a valid app name (letters, digits, '-', '_'; at most 64)")]
    [InlineData(",\"app\":\"-lead\"", "app '-lead' is not a valid app name (letters, digits, '-', '_'; at most 64)")]
    [InlineData(",\"app\":\"\"", "app '' is not a valid app name (letters, digits, '-', '_'; at most 64)")]
    public void App_errors_carry_the_call_id(string app, string error)
    {
        Assert.Equal(new ClaimParser.Result(null, CallId, null, error), Parse($$"""{"callId":"{{Id}}" """ + app + "}"));
    }

    [Fact]
    public void An_app_name_of_65_characters_is_refused_and_64_is_fine()
    {
        var longest = "a" + new string('b', 63);
        Assert.Equal(longest, Parse($$"""{"callId":"{{Id}}","app":"{{longest}}"}""").Claim!.App);

        var tooLong = longest + "c";
        Assert.Equal($"app '{tooLong}' is not a valid app name (letters, digits, '-', '_'; at most 64)",
            Parse($$"""{"callId":"{{Id}}","app":"{{tooLong}}"}""").Error);
    }

    // Errors in the rest of the claim: both the call id and the app address the reply.
    [Theory]
    [InlineData(",\"target\":\"x\"", "target must be an object, not String")]
    [InlineData(",\"target\":{\"extension\":\"200\"}", "target.context is missing")]
    [InlineData(",\"target\":{\"context\":\"c\"}", "target.extension is missing")]
    [InlineData(",\"target\":{\"context\":5,\"extension\":\"200\"}", "target.context must be a string, not Number")]
    [InlineData(",\"target\":{\"context\":\" \",\"extension\":\"200\"}", "target.context and target.extension must not be empty")]
    [InlineData(",\"target\":{\"context\":\"c\",\"extension\":\"\"}", "target.context and target.extension must not be empty")]
    [InlineData(",\"target\":{\"context\":\"c\",\"extension\":\"200\",\"priority\":\"one\"}", "target.priority must be a whole number of at least 1")]
    [InlineData(",\"target\":{\"context\":\"c\",\"extension\":\"200\",\"priority\":0}", "target.priority must be a whole number of at least 1")]
    [InlineData(",\"target\":{\"context\":\"c\",\"extension\":\"200\",\"priority\":1.5}", "target.priority must be a whole number of at least 1")]
    [InlineData(",\"moveToApp\":3", "moveToApp must be a string, not Number")]
    [InlineData(",\"moveToApp\":\"\"", "moveToApp '' is not a valid ARI application name")]
    [InlineData(",\"moveToApp\":\"a,b\"", "moveToApp 'a,b' is not a valid ARI application name")]
    [InlineData(",\"target\":{\"context\":\"c\",\"extension\":\"200\"},\"moveToApp\":\"other\"", "give either target or moveToApp, not both")]
    [InlineData(",\"appArgs\":\"vip\"", "appArgs must be an array of strings, not String")]
    [InlineData(",\"appArgs\":[\"vip\",1]", "appArgs must be an array of strings; found Number")]
    [InlineData(",\"appArgs\":[\"a,b\"]", "appArgs items must have no comma and at most 256 characters")]
    [InlineData(",\"control\":\"yes\"", "control must be true or false, not String")]
    [InlineData(",\"control\":1", "control must be true or false, not Number")]
    [InlineData(",\"control\":true,\"moveToApp\":\"other\"", "control keeps the call in the router's app: give no target or moveToApp with it")]
    [InlineData(",\"control\":true,\"target\":{\"context\":\"c\",\"extension\":\"200\"}", "control keeps the call in the router's app: give no target or moveToApp with it")]
    [InlineData(",\"allEvents\":true", "allEvents chooses the events of a controlled call: give it with control true")]
    [InlineData(",\"control\":true,\"allEvents\":\"yes\"", "allEvents must be true or false, not String")]
    public void Errors_after_the_app_carry_the_call_id_and_app(string rest, string error)
    {
        Assert.Equal(new ClaimParser.Result(null, CallId, "sales", error), ParseWith(rest));
    }

    [Fact]
    public void Text_and_list_limits_are_exact()
    {
        var longest = new string('x', ClaimParser.MaxTextLength);
        Assert.Equal(longest, ParseWith($$""","moveToApp":"{{longest}}" """).Claim!.MoveToApp);
        Assert.Equal("moveToApp is longer than 256 characters", ParseWith($$""","moveToApp":"{{longest}}y" """).Error);
        Assert.Equal("appArgs items must have no comma and at most 256 characters", ParseWith($$""","appArgs":["{{longest}}y"]""").Error);

        var most = string.Join(',', Enumerable.Repeat("\"a\"", ClaimParser.MaxAppArgs));
        Assert.Equal(ClaimParser.MaxAppArgs, ParseWith($""","appArgs":[{most}]""").Claim!.AppArgs!.Count);
        Assert.Equal("appArgs has more than 32 items", ParseWith($""","appArgs":[{most},"a"]""").Error);
    }

    [Fact]
    public void The_first_error_in_field_order_is_reported()
    {
        // target is read before moveToApp, moveToApp before appArgs.
        Assert.Equal("target must be an object, not Number", ParseWith(""","appArgs":5,"moveToApp":7,"target":1""").Error);
        Assert.Equal("moveToApp must be a string, not Number", ParseWith(""","appArgs":5,"moveToApp":7""").Error);
    }
}
