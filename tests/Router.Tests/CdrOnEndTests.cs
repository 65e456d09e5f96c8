using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// A call's CDR leaves the adapter when its channel ends, not when the router's claim tally arrives: an adapter that
/// stops (or crashes) in between loses no row. A failed move keeps its winner, who hears that the call failed.
/// </summary>
public sealed class CdrOnEndTests : PostgresStackTest
{
    protected override void Configure(RoutingStack stack)
    {
        // The router's tally comes 30 s after the decision, far later than the row must land.
        stack.RouterSettings["Router:FinishedRetention"] = "00:00:30";
        stack.AdapterSettings["Adapter:TallyWait"] = "00:01:00";
    }

    [Fact]
    public async Task An_ended_calls_row_lands_before_the_tally_and_survives_the_adapter_stopping()
    {
        await Stack.AddApp("sales");
        // Offered to an app that never claims, so the tally waits for the router to forget the call (a call every offered
        // app has claimed gets it at once: EarlyTallyTests).
        await Stack.AddApp("billing", autoClaim: false);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000"]);
        await channel.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));

        await WaitForCdrs(1, TimeSpan.FromSeconds(15), complete: false);
        await Stack.StopAdapter();

        var row = Assert.Single(await Cdrs());
        Assert.Equal((channel.Id, CallStatus.Success, DispositionReason.Claimed, "sales"), (row.ChannelId, row.Status, row.Reason, row.Winner));
        Assert.Null(row.Claims); // the tally never came: claims unknown
    }

    [Fact]
    public async Task A_call_caught_by_an_adapter_restart_keeps_its_broadcast_id_on_the_channel_and_in_its_cdr()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>(TaskCreationOptions.RunContinuationsAsynchronously);
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Eventually.True(() => channel.Variables.ContainsKey("ROUTER_CALL_ID"), TimeSpan.FromSeconds(10), "the call id never reached the channel");

        await Stack.StopAdapter();
        await Stack.StartAdapter();
        await channel.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));
        await WaitForCdrs(1, TimeSpan.FromSeconds(15));

        Assert.Equal(DispositionReason.AdapterRestarted, channel.Variables["ROUTER_REASON"]);
        Assert.Equal(broadcast.CallId.ToString(), channel.Variables["ROUTER_CALL_ID"]);
        var row = Assert.Single(await Cdrs());
        Assert.Equal((broadcast.CallId, CallStatus.Failed, DispositionReason.AdapterRestarted), (row.CallId, row.Status, row.Reason));
    }

    [Fact]
    public async Task A_failed_move_keeps_its_winner_in_the_cdr_and_the_winner_hears_call_failed()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>(TaskCreationOptions.RunContinuationsAsynchronously);
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True((await sales.Claim(broadcast.CallId, moveToApp: "ghost-app")).Accepted);
        await channel.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));
        await WaitForCdrs(1, TimeSpan.FromSeconds(15), complete: false);
        await Eventually.True(() => !sales.FailedNotices.IsEmpty, TimeSpan.FromSeconds(10), "the winner never heard that its call failed");

        var row = Assert.Single(await Cdrs());
        Assert.Equal((CallStatus.Failed, DispositionReason.MoveFailed, "sales"), (row.Status, row.Reason, row.Winner));
        var notice = Assert.Single(sales.FailedNotices);
        Assert.Equal((broadcast.CallId, channel.Id, "sales", CallStatus.Failed, DispositionReason.MoveFailed),
            (notice.CallId, notice.ChannelId, notice.Winner, notice.Status, notice.Reason));
        Assert.Equal("app 'ghost-app' is not connected", notice.Detail);
    }
}
