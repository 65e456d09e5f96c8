using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// Past capacity the calls shed at once outnumber the routed ones, and both need ARI's call lane to leave Stasis: a
/// routed call's handover takes the next free connection ahead of every shed call's request already waiting.
/// </summary>
public sealed class AriPriorityTests : RoutingTest
{
    private const int Shed = 10;

    public AriPriorityTests()
    {
        // One connection at 100 ms a request; one open call at most, so every call after the first is shed (3 requests each).
        Stack.AdapterSettings["Adapter:MaxAriConnections"] = "1";
        Stack.AdapterSettings["Adapter:MaxOpenCalls"] = "1";
        Stack.AdapterSettings["Adapter:HandoverTimeout"] = "00:02:00";
    }

    [Fact]
    public async Task A_routed_call_is_handed_over_ahead_of_the_shed_calls_queued_before_its_decision()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var routed = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=60000"]);
        await Eventually.True(() => sales.Broadcasts.Any(b => b.ChannelId == routed.Id), TimeSpan.FromSeconds(10), "the first call was never broadcast");
        Stack.Ari.Faults = (operation, _) => operation is "variable" or "continue" ? new AriFault(AriFaultKind.SlowStart, TimeSpan.FromMilliseconds(100)) : null;

        var shed = Enumerable.Range(0, Shed).Select(i => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=60000"], channelId: $"shed-{i}")).ToList();
        // At least five shed calls' requests (three each) wait behind the one in flight before the first call is decided.
        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!)).Sum("callrouter_adapter_ari_waiting") >= 15,
            TimeSpan.FromSeconds(10), "the shed calls' requests never queued");
        Assert.True((await sales.Claim(sales.Broadcasts.Single(b => b.ChannelId == routed.Id).CallId)).Accepted);

        await Task.WhenAll(shed.Append(routed).Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal((CallStatus.Success, "sales"), (routed.Variables[CallHandover.StatusVariable], routed.Variables[CallHandover.WinnerVariable]));
        Assert.All(shed, c => Assert.Equal((CallStatus.Failed, DispositionReason.Overloaded),
            (c.Variables[CallHandover.StatusVariable], c.Variables[CallHandover.ReasonVariable])));
        // In one queue the routed call would leave last; ahead of them, at most the shed calls not queued behind it (5
        // of 10, and one whose request was in flight) leave before it.
        var shedAfter = shed.Count(c => c.HandoverTimestamp > routed.HandoverTimestamp);
        Assert.True(shedAfter >= 4, $"only {shedAfter} of {Shed} shed calls left Stasis after the routed call");
        var scrape = await Scrape.Of(Stack.Adapter!);
        Assert.Equal((0.0, 0.0), (scrape["callrouter_adapter_ari_waiting{order=\"first\"}"], scrape["callrouter_adapter_ari_waiting{order=\"behind\"}"]));
    }
}
