using System.Text;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>Every bad command gets one clear reply and changes nothing; refusals of shape and owner are parked.</summary>
public sealed class ControlRefusalTests : RoutingTest
{
    [Fact]
    public async Task Only_the_owner_of_the_winning_app_may_command_the_call_others_are_forbidden_and_parked()
    {
        // Both apps run as users made by infra/add-app-user.sh: the winner's rights suffice to control, the intruder's do not.
        var ownerUser = await Stack.Broker.CreateAppUser("owner");
        var intruderUser = await Stack.Broker.CreateAppUser("intruder");
        await using var owner = await ControlledCall.StartApp(Stack, ownerUser.User, ownerUser);
        await using var intruder = await ControlledCall.StartApp(Stack, intruderUser.User, intruderUser, autoClaim: false);
        var call = await ControlledCall.Start(Stack, owner);

        var forbidden = await intruder.Command(call.Route, new ControlCall(call.CallId, ControlCommands.Hangup));

        Assert.Equal((false, ControlFailure.Forbidden), (forbidden.Ok, forbidden.Reason));
        Assert.Contains($"'{intruderUser.User}' does not own app '{ownerUser.User}'", forbidden.Detail);
        Assert.False(call.Caller.HungUp);
        Assert.Empty(intruder.EventsOf(call.CallId));
        await Eventually.True(async () => await Stack.Broker.MessageCount(Topology.ControlErrorQueue) == 1, TimeSpan.FromSeconds(10), "the forbidden command was not parked");
        Assert.Contains("forbidden", await Stack.Broker.GetQueueMessages(Topology.ControlErrorQueue));
        Assert.True((await call.Do(new ControlCall(call.CallId, ControlCommands.Answer))).Ok);
    }

    [Fact]
    public async Task Bad_commands_get_one_clear_reply_each_and_change_nothing()
    {
        await using var app = await ControlledCall.StartApp(Stack, "dialer");
        var call = await ControlledCall.Start(Stack, app);
        async Task<ControlReply> Raw(string json, string? route = null) => (await app.Timed(route ?? call.Route, Encoding.UTF8.GetBytes(json))).Reply;
        var id = call.CallId;

        var cases = new (ControlReply Reply, string Reason, string Detail)[]
        {
            (await Raw("{not json"), ControlFailure.InvalidRequest, "not a command"),
            (await Raw("[1,2]"), ControlFailure.InvalidRequest, "not a command"),
            (await Raw($$"""{"command":"answer"}"""), ControlFailure.InvalidRequest, "callId is missing"),
            (await Raw($$"""{"callId":"{{id}}","command":"teleport"}"""), ControlFailure.InvalidRequest, "unknown command 'teleport'"),
            (await Raw($$"""{"callId":"{{id}}","command":"dial","timeout":"soon"}"""), ControlFailure.InvalidRequest, "not a command"),
            (await Raw($$"""{"callId":"{{id}}","command":"play"}"""), ControlFailure.InvalidRequest, "media is missing"),
            (await Raw($$"""{"callId":"{{id}}","command":"hangup","reason":"because"}"""), ControlFailure.InvalidRequest, "reason 'because'"),
            (await Raw($$"""{"callId":"{{id}}","command":"sendDtmf","dtmf":"12x"}"""), ControlFailure.InvalidRequest, "dtmf must be"),
            (await Raw($$"""{"callId":"{{Guid.NewGuid()}}","command":"answer"}"""), ControlFailure.NotFound, "no controlled call"),
            (await Raw($$"""{"callId":"{{id}}","command":"answer","channelId":"nope"}"""), ControlFailure.NotInCall, "channel nope is not part of call"),
            (await Raw($$"""{"callId":"{{id}}","command":"addChannel","channelId":"{{call.Caller.Id}}","bridgeId":"nope"}"""), ControlFailure.NotInCall, "bridge nope"),
            (await Raw($$"""{"callId":"{{id}}","command":"stopPlayback","playbackId":"nope"}"""), ControlFailure.NotInCall, "playback nope"),
            (await Raw($$"""{"callId":"{{id}}","command":"answer"}""", route: "no-such-node"), ControlFailure.NodeUnavailable, "no adapter serves route 'no-such-node'"),
        };

        Assert.All(cases, c =>
        {
            Assert.False(c.Reply.Ok);
            Assert.Equal(c.Reason, c.Reply.Reason);
            Assert.Contains(c.Detail, c.Reply.Detail);
        });
        // A command without reply_to cannot be answered: it is parked.
        await app.Send(call.Route, Encoding.UTF8.GetBytes($$"""{"callId":"{{id}}","command":"answer"}"""));
        var parked = cases.Count(c => c.Reason == ControlFailure.InvalidRequest) + 1;
        await Eventually.True(async () => await Stack.Broker.MessageCount(Topology.ControlErrorQueue) == parked, TimeSpan.FromSeconds(10),
            $"expected {parked} parked commands");
        Assert.False(call.Caller.HungUp);
        Assert.Single(Stack.Ari.Bridges);
        Assert.True((await call.Do(new ControlCall(id, ControlCommands.Continue))).Ok);
        Assert.Equal(ControlEnding.Continued, (await app.WaitEnded(id)).Reason);
    }

    [Fact]
    public async Task A_seeded_flood_of_random_commands_gets_one_reply_each_and_calls_are_still_routed_and_controlled()
    {
        const int seed = 11_2026;
        var random = new Random(seed);
        await using var app = await ControlledCall.StartApp(Stack, "dialer");
        var call = await ControlledCall.Start(Stack, app);
        string?[] ids = [null, "", call.Caller.Id, call.Callee, call.Bridge, "nope", "ctl-" + new string('9', 40)];
        string[] fields = ["channelId", "bridgeId", "playbackId", "media", "dtmf", "variable", "value", "endpoint", "reason"];
        string[] safe = [ControlCommands.GetVariable, ControlCommands.SetVariable, ControlCommands.StopPlayback, ControlCommands.SendDtmf, ControlCommands.Answer,
            ControlCommands.Play, ControlCommands.Dial, ControlCommands.CreateBridge, "teleport", "ANSWER", ""];

        var replies = new List<ControlReply>();
        for (var i = 0; i < 300; i++)
        {
            string json;
            switch (random.Next(4))
            {
                case 0:
                    var bytes = new byte[random.Next(0, 64)];
                    random.NextBytes(bytes);
                    json = Encoding.Latin1.GetString(bytes);
                    break;
                case 1:
                    json = $$"""{"callId":{{(random.Next(2) == 0 ? "42" : $"\"{call.CallId}\"")}},"command":"{{safe[random.Next(safe.Length)]}}","timeout":{{random.Next(-5, 5000)}}}""";
                    break;
                default:
                    // Only harmless commands on the live call (no hang-up, continue or removal), so the call must survive the flood.
                    var field = fields[random.Next(fields.Length)];
                    var value = ids[random.Next(ids.Length)];
                    json = $$"""{"callId":"{{(random.Next(3) == 0 ? Guid.NewGuid() : call.CallId)}}","command":"{{safe[random.Next(safe.Length)]}}","{{field}}":{{(value is null ? "null" : $"\"{value}\"")}},"variable":"V{{i}}"}""";
                    break;
            }
            replies.Add((await app.Timed(call.Route, Encoding.UTF8.GetBytes(json))).Reply);
        }

        Assert.Equal(300, replies.Count);
        Assert.All(replies, r => Assert.True(r.Ok || r.Reason is not null, $"seed {seed}: a refusal without a reason"));
        Assert.False(call.Caller.HungUp);
        // The adapter still routes and hands over new calls.
        var next = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var broadcast = await app.WaitBroadcast();
        var started = await app.WaitStarted(broadcast.CallId);
        Assert.Equal(next.Id, started.ChannelId);
    }
}
