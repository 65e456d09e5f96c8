using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>An app told `accepted` whose decision never reached the adapter hears the call is not coming.</summary>
public sealed class AcceptedDecisionLostTests : RoutingTest
{
    [Fact]
    public async Task The_winner_of_a_call_the_adapter_fell_back_alone_gets_CallFailed_router_no_answer()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>(TaskCreationOptions.RunContinuationsAsynchronously);
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        // Decisions for this adapter go nowhere (as if they were lost on the way): it falls back alone after the deadline.
        var o = Stack.Broker.Options;
        var factory = o.Factory("test AcceptedDecisionLostTests");
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
            await channel.QueueUnbindAsync(Topology.AdapterQueue(RoutingStack.Node), Topology.CommandExchange, RoutingStack.Node);

        var call = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=2000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var reply = await sales.Claim(broadcast.CallId, new DialplanTarget("sales-queue", "s", 1)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(reply.Accepted, $"{reply.Reason} {reply.Detail}");
        await call.Handover.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal((CallStatus.Timeout, DispositionReason.RouterNoAnswer),
            (call.Variables[CallHandover.StatusVariable], call.Variables[CallHandover.ReasonVariable]));

        await Eventually.True(() => !sales.FailedNotices.IsEmpty, TimeSpan.FromSeconds(15), "the winner was never told the call is not coming");
        await Stack.WaitForSagaState(broadcast.CallId, "Ended");
        var failed = Assert.Single(sales.FailedNotices);
        Assert.Equal((broadcast.CallId, call.Id, "sales", CallStatus.Timeout, DispositionReason.RouterNoAnswer),
            (failed.CallId, failed.ChannelId, failed.Winner, failed.Status, failed.Reason));
    }
}
