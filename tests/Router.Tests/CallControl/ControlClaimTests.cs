using System.Text;
using CallRouter.Router.Transport;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>The claim field that asks for control, as the router reads it.</summary>
public sealed class ControlClaimTests
{
    private static readonly Guid CallId = Guid.NewGuid();

    private static ClaimParser.Result Parse(string extra) =>
        ClaimParser.Parse(Encoding.UTF8.GetBytes($$"""{"callId":"{{CallId}}","app":"sales"{{extra}}}"""));

    [Fact]
    public void A_claim_may_ask_for_control_and_defaults_to_none()
    {
        Assert.True(Parse(""","control":true""").Claim!.Control);
        Assert.False(Parse(""","control":false""").Claim!.Control);
        Assert.False(Parse("").Claim!.Control);
    }

    [Theory]
    [InlineData(""","control":"yes" """, "control must be true or false, not String")]
    [InlineData(""","control":true,"target":{"context":"a","extension":"s"}""", "give no target or moveToApp with it")]
    [InlineData(""","control":true,"moveToApp":"mine" """, "give no target or moveToApp with it")]
    public void A_control_claim_that_also_names_a_destination_or_is_not_a_boolean_is_invalid(string extra, string error)
    {
        var result = Parse(extra);
        Assert.Null(result.Claim);
        Assert.Contains(error, result.Error);
    }
}
