using System.Diagnostics;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// Admission control on the adapter's side: while Adapter__MaxOpenCalls broadcast calls wait for their decision, a new
/// call is not broadcast but leaves Stasis at once as FAILED/overloaded; once one of them is decided, calls are offered again.
/// </summary>
public sealed class OpenCallsCapTests : RoutingTest
{
    private const int Limit = 2;

    public OpenCallsCapTests() => Stack.AdapterSettings["Adapter:MaxOpenCalls"] = Limit.ToString();

    [Fact]
    public async Task A_call_over_the_cap_leaves_at_once_as_overloaded_and_calls_are_offered_again_once_one_is_decided()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var waiting = Enumerable.Range(0, Limit).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"])).ToList();
        await Eventually.True(() => sales.Broadcasts.Count == Limit, TimeSpan.FromSeconds(10), "the first calls were never broadcast");

        var started = Stopwatch.StartNew();
        var shed = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"]);
        await shed.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.InRange(started.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(5)); // at once, not at the 30 s deadline
        Assert.Equal(CallStatus.Failed, shed.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.Overloaded, shed.Variables[CallHandover.ReasonVariable]);
        Assert.Equal($"{Limit} calls waited for a decision on this adapter", shed.Variables[CallHandover.DetailVariable]);
        Assert.DoesNotContain(sales.Broadcasts, b => b.ChannelId == shed.Id);
        // Counted once ARI has answered the continue, which the adapter may read just after the channel left.
        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_failed_total{reason=\"overloaded\"}"] == 1,
            TimeSpan.FromSeconds(5), "the shed call was not counted as failed/overloaded once");

        // One waiting call is won and handed over: there is room again, and the next call is broadcast and routed.
        var first = sales.Broadcasts.Single(b => b.ChannelId == waiting[0].Id);
        Assert.True((await sales.Claim(first.CallId)).Accepted);
        await waiting[0].Handover.WaitAsync(TimeSpan.FromSeconds(10));
        var next = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"]);
        await Eventually.True(() => sales.Broadcasts.Any(b => b.ChannelId == next.Id), TimeSpan.FromSeconds(10), "the next call was never broadcast");
        Assert.True((await sales.Claim(sales.Broadcasts.Single(b => b.ChannelId == next.Id).CallId)).Accepted);
        await next.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((CallStatus.Success, "sales"), (next.Variables[CallHandover.StatusVariable], next.Variables[CallHandover.WinnerVariable]));
        Assert.Equal(1, (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_failed_total{reason=\"overloaded\"}"]);
    }
}
