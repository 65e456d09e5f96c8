using System.Text;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>Nonsense from an app gets a precise rejection and is parked with its reason; real calls keep being decided.</summary>
public sealed class BadInputTests : RoutingTest
{
    [Fact]
    public async Task Malformed_claims_are_rejected_with_the_reason_and_parked_and_the_router_keeps_deciding()
    {
        var app = await Stack.AddApp("sales", autoClaim: false);
        var callId = Guid.NewGuid();
        var cases = new (string Body, string Detail)[]
        {
            ("{not json", "not valid JSON"),
            ("[1,2,3]", "a claim must be a JSON object, not Array"),
            ($$"""{"callId":123,"app":"sales"}""", "callId must be a string, not Number"),
            ($$"""{"callId":"{{callId}}"}""", "app is missing"),
            ($$"""{"callId":"nope","app":"sales"}""", "callId 'nope' is not a UUID"),
            ($$$"""{"callId":"{{{callId}}}","app":"sales","target":{"context":"x","extension":"s","priority":"one"}}""", "target.priority must be a whole number of at least 1"),
            ($$$"""{"callId":"{{{callId}}}","app":"sales","target":{"context":" ","extension":"s"}}""", "target.context and target.extension must not be empty"),
            ($$"""{"callId":"{{callId}}","app":"bad.name"}""", "app 'bad.name' is not a valid app name"),
            ($$"""{"callId":"{{callId}}","app":"sales","pad":"{{new string('x', 20_000)}}"}""", "the limit is 16384"),
        };

        foreach (var (body, detail) in cases)
        {
            var reply = await app.ClaimRaw(Encoding.UTF8.GetBytes(body));
            Assert.False(reply.Accepted);
            Assert.Equal(RejectReason.InvalidRequest, reply.Reason);
            Assert.Contains(detail, reply.Detail);
        }

        await Eventually.True(() => ParkedIn(Topology.RouterErrorQueue).Result == cases.Length, TimeSpan.FromSeconds(5), "bad claims not parked");
        var parked = await Stack.Broker.GetQueueMessages(Topology.RouterErrorQueue);
        foreach (var (_, detail) in cases)
            Assert.Contains(detail, parked);
        Assert.Contains("MT-Fault-Message", parked);
        Assert.Contains("\"payload\":\"{not json\"", parked);

        // The router still decides real calls.
        var offered = new TaskCompletionSource<CallBroadcast>();
        app.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True((await app.Claim(broadcast.CallId)).Accepted);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
    }

    [Fact]
    public async Task A_malformed_heartbeat_is_parked_with_its_reason_and_gives_no_app_liveness()
    {
        var app = await Stack.AddApp("sales");
        await using var raw = new Demo.ClaimantApp(Stack.Broker.Options, "raw-sender");
        await raw.Start();
        await Stack.WaitUntilLive("raw-sender");
        await raw.Heartbeat("stopping");
        await Stack.WaitUntilGone("raw-sender");

        await PublishHeartbeat("""{"app":"no.dots.allowed"}""");
        await PublishHeartbeat("{oops");
        await Eventually.True(() => CountParked().Result == 2, TimeSpan.FromSeconds(5), "heartbeats not parked");

        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("sales", channel.Variables[CallHandover.WinnerVariable]);
    }

    private Task<int> CountParked() => ParkedIn(Topology.HeartbeatExchange + "_error");

    private async Task<int> ParkedIn(string queue)
    {
        try
        {
            return System.Text.Json.JsonDocument.Parse(await Stack.Broker.GetQueueMessages(queue)).RootElement.GetArrayLength();
        }
        catch (HttpRequestException exception) when (exception.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return 0; // the error queue is made with its first message
        }
    }

    private async Task PublishHeartbeat(string body)
    {
        var o = Stack.Broker.Options;
        var factory = o.Factory("test BadInputTests");
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.BasicPublishAsync(Topology.HeartbeatExchange, "", false, new BasicProperties(), Encoding.UTF8.GetBytes(body));
    }
}
