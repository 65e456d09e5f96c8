using System.Diagnostics;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// Admission control: while the router's queue holds more than Adapter__ShedAboveRouterBacklog messages, a new call is
/// not broadcast but leaves Stasis at once as FAILED/overloaded (not at its deadline), counted in the adapter's
/// metrics; once the router has drained its queue, calls are offered and routed again.
/// </summary>
public sealed class AdmissionTests : RoutingTest
{
    private const int Limit = 3;

    public AdmissionTests()
    {
        Stack.AdapterSettings["Adapter:ShedAboveRouterBacklog"] = Limit.ToString();
        Stack.AdapterSettings["Adapter:BacklogCheckInterval"] = "00:00:00.050";
    }

    [Fact]
    public async Task A_call_offered_while_the_router_is_behind_leaves_at_once_as_overloaded_and_calls_route_again_once_it_caught_up()
    {
        var sales = await Stack.AddApp("sales");
        await Stack.StopRouter();

        // Four broadcasts and their four claims wait in the router's queue: 8 messages, over the limit of 3.
        var waiting = Enumerable.Range(0, 4).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"])).ToList();
        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_router_backlog"] > Limit,
            TimeSpan.FromSeconds(10), "the adapter never saw the router's backlog grow");

        var started = Stopwatch.StartNew();
        var shed = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"]);
        await shed.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.InRange(started.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(5)); // at once, not at the 30 s deadline
        Assert.Equal(CallStatus.Failed, shed.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.Overloaded, shed.Variables[CallHandover.ReasonVariable]);
        Assert.StartsWith("the router's queue held ", shed.Variables[CallHandover.DetailVariable]);
        Assert.DoesNotContain(sales.Broadcasts, b => b.ChannelId == shed.Id);
        // Counted once ARI has answered the continue, which the adapter may read just after the channel left.
        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_failed_total{reason=\"overloaded\"}"] == 1,
            TimeSpan.FromSeconds(5), "the shed call was not counted as failed/overloaded once");

        // The router comes back and works through its queue: the waiting calls are won, and new calls are offered again.
        await Stack.StartRouter();
        await Task.WhenAll(waiting.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.All(waiting, c => Assert.Equal((CallStatus.Success, "sales"), (c.Variables[CallHandover.StatusVariable], c.Variables[CallHandover.WinnerVariable])));
        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_router_backlog"] <= Limit,
            TimeSpan.FromSeconds(10), "the adapter never saw the router's backlog drain");

        var next = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"]);
        await next.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((CallStatus.Success, "sales"), (next.Variables[CallHandover.StatusVariable], next.Variables[CallHandover.WinnerVariable]));
        Assert.Equal(1, (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_failed_total{reason=\"overloaded\"}"]);
    }
}
