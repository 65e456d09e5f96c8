using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// An app told `accepted` for a call whose adapter crashed before handing it over hears the call failed: the restarted
/// adapter fails the leftover channel FAILED/adapter-restarted under its broadcast id and reports it; the router tells
/// the winner (CallFailed) and counts it. With sagas in memory and in PostgreSQL.
/// </summary>
public abstract class AcceptedThenAdapterRestartTests : PostgresStackTest
{
    protected override void Configure(RoutingStack stack) =>
        // The router remembers the decided call (and its winner) across the adapter's restart.
        stack.RouterSettings["Router:FinishedRetention"] = "00:00:30";

    [Fact]
    public async Task The_winner_of_a_call_its_adapter_never_handed_over_gets_CallFailed_adapter_restarted_under_the_same_id()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>(TaskCreationOptions.RunContinuationsAsynchronously);
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Eventually.True(() => channel.Variables.ContainsKey(CallHandover.CallIdVariable), TimeSpan.FromSeconds(10), "the call id never reached the channel");

        // The adapter goes away between the broadcast and the handover; the router still decides, and tells the app.
        await Stack.StopAdapter();
        var reply = await sales.Claim(broadcast.CallId, new DialplanTarget("sales-queue", "s", 1)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(reply.Accepted, $"{reply.Reason} {reply.Detail}");

        await Stack.StartAdapter();
        await channel.Destroyed.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(CallStatus.Failed, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.AdapterRestarted, channel.Variables[CallHandover.ReasonVariable]);
        Assert.Equal(broadcast.CallId.ToString(), channel.Variables[CallHandover.CallIdVariable]);
        Assert.NotEqual("sales-queue", channel.ContinuedTo?.Context);

        await Eventually.True(() => !sales.FailedNotices.IsEmpty, TimeSpan.FromSeconds(15), "the winner was never told the call failed");
        var router = await Scrape.Of(Stack.Router!);
        Assert.Equal(1, router["callrouter_router_failed_total{reason=\"adapter-restarted\"}"]);
        var failed = Assert.Single(sales.FailedNotices);
        Assert.Equal((broadcast.CallId, channel.Id, "sales", CallStatus.Failed, DispositionReason.AdapterRestarted),
            (failed.CallId, failed.ChannelId, failed.Winner, failed.Status, failed.Reason));

        await WaitForCdrs(1, TimeSpan.FromSeconds(15), complete: false);
        var row = Assert.Single(await Cdrs());
        Assert.Equal((broadcast.CallId, CallStatus.Failed, DispositionReason.AdapterRestarted), (row.CallId, row.Status, row.Reason));
    }
}

/// <summary><see cref="AcceptedThenAdapterRestartTests"/> with the router's sagas in memory.</summary>
public sealed class AcceptedThenAdapterRestartInMemoryTests : AcceptedThenAdapterRestartTests;

/// <summary><see cref="AcceptedThenAdapterRestartTests"/> with the router's sagas in PostgreSQL.</summary>
public sealed class AcceptedThenAdapterRestartInPostgresTests : AcceptedThenAdapterRestartTests
{
    protected override bool SagasInPostgres => true;
}
