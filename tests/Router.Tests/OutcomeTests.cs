using System.Diagnostics;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>Calls that end without a winner: TIMEOUT, FAILED at once, ABANDONED; and claims for calls that are not open.</summary>
public sealed class OutcomeTests : RoutingTest
{
    // The 20 ms p99 lateness target is measured by the benchmark (README, "Benchmark"), not by a timed test: here every
    // call must be timed out by the router (not by the adapter's fallback at deadline + 500 ms), never early.
    [Fact]
    public async Task With_no_claim_the_router_times_the_call_out_at_the_deadline()
    {
        await Stack.AddApp("silent", autoClaim: false);
        var channels = new List<AriSimulator.SimChannel>();
        for (var i = 0; i < 50; i++)
        {
            channels.Add(Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=300"]));
            await Task.Delay(10);
        }
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.All(channels, c =>
        {
            Assert.Equal(CallStatus.Timeout, c.Variables[CallHandover.StatusVariable]);
            Assert.Equal(DispositionReason.NoClaim, c.Variables[CallHandover.ReasonVariable]);
            Assert.Equal("SUCCESS", c.StasisStatus);
        });
        // Lateness from StasisStart + timeout: a slight overstatement, since the adapter starts the clock a little later.
        var lateness = channels.Select(c => Stopwatch.GetElapsedTime(c.StasisStartTimestamp, c.HandoverTimestamp).TotalMilliseconds - 300).Order().ToList();
        Assert.True(lateness[0] >= 0, $"a call timed out {-lateness[0]:F1} ms early");
        Assert.True(lateness[^1] < 250, $"a timeout came {lateness[^1]:F1} ms late, nearer the adapter's fallback than the deadline");
    }

    [Fact]
    public async Task No_live_app_matching_the_filter_fails_at_once_with_the_reason()
    {
        await Stack.AddApp("sales", autoClaim: false);
        var started = Stopwatch.StartNew();
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "filter=^billing$"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True(started.ElapsedMilliseconds < 1000, $"took {started.ElapsedMilliseconds} ms");
        Assert.Equal(CallStatus.Failed, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.NoLiveApp, channel.Variables[CallHandover.ReasonVariable]);
        Assert.Equal("no live app matches '^billing$'", channel.Variables[CallHandover.DetailVariable]);
    }

    [Theory]
    [InlineData("filter=(sales", "is not a valid pattern")]
    [InlineData(@"filter=(a)\1", "linear-time matching cannot run")]
    public async Task An_invalid_filter_fails_at_once_with_the_reason(string filterArg, string detail)
    {
        var sales = await Stack.AddApp("sales");
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", filterArg]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(2));

        Assert.Equal(CallStatus.Failed, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.InvalidFilter, channel.Variables[CallHandover.ReasonVariable]);
        Assert.Contains(detail, channel.Variables[CallHandover.DetailVariable]);
        Assert.Empty(sales.Broadcasts);
    }

    [Fact]
    public async Task Invalid_options_fail_at_once()
    {
        await Stack.AddApp("sales");
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=soon"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(2));

        Assert.Equal(CallStatus.Failed, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.InvalidOptions, channel.Variables[CallHandover.ReasonVariable]);
    }

    [Fact]
    public async Task A_hangup_during_the_broadcast_abandons_the_call_and_a_late_claim_is_rejected_as_finished()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>();
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(5));

        await Stack.Ari.HangupAsync(channel.Id);
        await Stack.WaitForSagaState(broadcast.CallId, "Ended"); // the router has taken the adapter's CallEnded
        var reply = await sales.Claim(broadcast.CallId);

        Assert.False(reply.Accepted);
        Assert.Equal(RejectReason.Finished, reply.Reason);
        Assert.Equal($"call already ended ({CallStatus.Abandoned}: {DispositionReason.CallerHangup})", reply.Detail);
        Assert.Null(channel.ContinuedTo);
    }

    [Fact]
    public async Task A_claim_for_an_unknown_call_is_rejected_as_not_found()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var reply = await sales.Claim(Guid.NewGuid());

        Assert.False(reply.Accepted);
        Assert.Equal(RejectReason.NotFound, reply.Reason);
    }

    [Fact]
    public async Task A_claim_from_an_app_outside_the_audience_is_an_invalid_request()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var support = await Stack.AddApp("support", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>();
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "filter=^sales$"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(5));

        var reply = await support.Claim(broadcast.CallId);

        Assert.False(reply.Accepted);
        Assert.Equal(RejectReason.InvalidRequest, reply.Reason);
        Assert.Equal("app 'support' was not offered this call", reply.Detail);
        Assert.Empty(support.Broadcasts);
    }

    [Fact]
    public async Task With_notify_every_app_in_the_audience_hears_who_won()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var support = await Stack.AddApp("support", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>();
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "notify=yes"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True((await sales.Claim(broadcast.CallId)).Accepted);
        await Eventually.True(() => !sales.ClaimedNotices.IsEmpty && !support.ClaimedNotices.IsEmpty, TimeSpan.FromSeconds(5), "CallClaimed not heard");

        Assert.All(new[] { sales, support }, app =>
        {
            var notice = Assert.Single(app.ClaimedNotices);
            Assert.Equal(broadcast.CallId, notice.CallId);
            Assert.Equal("sales", notice.Winner);
            Assert.Equal(channel.Id, notice.ChannelId);
        });
    }
}
