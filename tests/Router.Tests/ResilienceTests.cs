using System.Diagnostics;
using System.Text;
using System.Text.Json;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>No call is stranded: the adapter falls back alone, recovers leftovers, and claims that overtake broadcasts still count.</summary>
public sealed class ResilienceTests : RoutingTest
{
    [Fact]
    public async Task With_the_router_stopped_the_adapter_falls_back_by_itself_after_the_deadline_and_grace()
    {
        await Stack.AddApp("sales");
        await Stack.StopRouter();
        var started = Stopwatch.StartNew();
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=300"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.InRange(started.ElapsedMilliseconds, 800, 2000);
        Assert.Equal(CallStatus.Timeout, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.RouterNoAnswer, channel.Variables[CallHandover.ReasonVariable]);
    }

    [Fact]
    public async Task A_restarted_adapter_falls_back_the_channels_left_in_its_stasis_app()
    {
        var app = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>();
        app.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"]);
        await offered.Task.WaitAsync(TimeSpan.FromSeconds(5));

        await Stack.StopAdapter();
        Assert.Equal(RoutingStack.StasisApp, channel.App);
        await Stack.StartAdapter();
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(CallStatus.Failed, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.AdapterRestarted, channel.Variables[CallHandover.ReasonVariable]);
    }

    [Fact]
    public async Task A_claim_that_reaches_the_router_before_its_broadcast_is_still_decided()
    {
        var app = await Stack.AddApp("sales", autoClaim: false);
        var o = Stack.Broker.Options;
        var factory = o.Factory("test ResilienceTests");
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var commands = (await channel.QueueDeclareAsync("", exclusive: true)).QueueName;
        await channel.QueueBindAsync(commands, Topology.CommandExchange, "ghost-node");

        var callId = Guid.NewGuid();
        var claim = app.Claim(callId);
        await Stack.WaitForSagaState(callId, "AwaitingBroadcast"); // the router holds the claim, unanswered
        Assert.False(claim.IsCompleted);

        var now = DateTimeOffset.UtcNow;
        var broadcast = new CallBroadcast(callId, "chan-1", "Local/1@x", "1", "A", "1000", "from-test", [], "ghost-node", "ast", null, false,
            ["sales"], now, now, now.AddSeconds(5), 5000);
        await TestBroker.PublishToRouter(channel, broadcast);

        var reply = await claim;
        Assert.True(reply.Accepted, reply.Detail);
        var command = await Receive(channel, commands);
        Assert.Equal(callId, command.CallId);
        Assert.Equal(CallStatus.Success, command.Status);
        Assert.Equal("sales", command.Winner);
    }

    /// <summary>The first ContinueCall on the queue (the call's ClaimTally, on the same queue, may come before or after it).</summary>
    private static async Task<ContinueCall> Receive(IChannel channel, string queue)
    {
        var until = DateTime.UtcNow.AddSeconds(5);
        while (DateTime.UtcNow < until)
        {
            if (await channel.BasicGetAsync(queue, autoAck: true) is { } message)
            {
                if (message.BasicProperties.Type == Topology.Types.ContinueCall)
                    return JsonSerializer.Deserialize<ContinueCall>(Encoding.UTF8.GetString(message.Body.Span), Wire.Json)!;
                continue;
            }
            await Task.Delay(20);
        }
        throw new TimeoutException("no ContinueCall");
    }
}
