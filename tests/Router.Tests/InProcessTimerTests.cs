using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Router.Saga;
using CallRouter.Tests.Infrastructure;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// With sagas in memory, the router's timers (deadline, forget) reach the saga in process: nothing goes out to the broker
/// and back, yet a deadline still ends an unclaimed call and a forget still ends the saga.
/// </summary>
public sealed class InProcessTimerTests : RoutingTest
{
    public InProcessTimerTests() => Stack.RouterSettings["Router:FinishedRetention"] = "00:00:00.300";

    [Fact]
    public async Task Deadlines_and_forgets_fire_without_a_message_through_the_router_queue()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        // A spy on the exchange the router queue is fed through: broker-borne timers were sent there.
        await using var connection = await Stack.Broker.Options.Connect("test spy");
        await using var spy = await connection.CreateChannelAsync();
        var spyQueue = (await spy.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await spy.QueueBindAsync(spyQueue, Topology.RouterQueue, "");

        var claimed = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var unclaimed = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=300"]);
        await Eventually.True(() => sales.Broadcasts.Count == 2, TimeSpan.FromSeconds(10), "the calls were never broadcast");
        var claimedCall = sales.Broadcasts.Single(b => b.ChannelId == claimed.Id).CallId;
        var unclaimedCall = sales.Broadcasts.Single(b => b.ChannelId == unclaimed.Id).CallId;
        Assert.True((await sales.Claim(claimedCall)).Accepted);
        await Task.WhenAll(claimed.Handover, unclaimed.Handover).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal((CallStatus.Success, DispositionReason.Claimed), (claimed.Variables[CallHandover.StatusVariable], claimed.Variables[CallHandover.ReasonVariable]));
        // no-claim is the router's decision at its deadline (the adapter's own fallback would say router-no-answer).
        Assert.Equal((CallStatus.Timeout, DispositionReason.NoClaim), (unclaimed.Variables[CallHandover.StatusVariable], unclaimed.Variables[CallHandover.ReasonVariable]));
        var sagas = Stack.Router!.Services.GetRequiredService<ILoadSagaRepository<CallState>>();
        await Eventually.True(async () => await sagas.Load(claimedCall) is null && await sagas.Load(unclaimedCall) is null,
            TimeSpan.FromSeconds(10), "the forget timers never ended the sagas");

        var types = new List<string?>();
        while (await spy.BasicGetAsync(spyQueue, autoAck: true) is { } message)
            types.Add(message.BasicProperties.Type);
        Assert.Equal(2, types.Count(t => t == Topology.Types.CallBroadcast)); // the spy hears what goes through that exchange
        Assert.DoesNotContain(nameof(BroadcastDeadline), types);
        Assert.DoesNotContain(nameof(ForgetCall), types);
    }
}
