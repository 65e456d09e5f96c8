using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// An ARI request's timeout counts from when it is sent, never from when it was queued, and background requests (the
/// CDR subscription, the early ROUTER_CALL_ID) go through a lane of their own that cannot starve the call path.
/// </summary>
public sealed class AriLaneTests : RoutingTest
{
    private const int Calls = 40;

    public AriLaneTests()
    {
        // Two connections at 100 ms a request: 20 requests a second on each lane. A burst of 40 calls makes about 280
        // requests; counted from when they were queued, most would wait far longer than the 2 s request timeout.
        Stack.AdapterSettings["Adapter:MaxAriConnections"] = "2";
        Stack.AdapterSettings["Adapter:AriBackgroundConcurrency"] = "2";
        Stack.AdapterSettings["Adapter:AriRequestTimeout"] = "00:00:02";
        Stack.AdapterSettings["Adapter:AriRequestRetries"] = "2";
        // The handover's own budget (queueing included) is not what this test is about.
        Stack.AdapterSettings["Adapter:HandoverTimeout"] = "00:02:00";
    }

    [Fact]
    public async Task A_burst_that_queues_for_connections_times_out_no_request_and_subscribes_every_channel()
    {
        await Stack.AddApp("sales");
        Stack.Ari.Faults = (operation, _) => operation is "variable" or "continue" or "subscription"
            ? new AriFault(AriFaultKind.SlowStart, TimeSpan.FromMilliseconds(100))
            : null;

        var channels = Enumerable.Range(0, Calls)
            .Select(i => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=60000"], channelId: $"burst-{i}"))
            .ToList();
        // Ops see the burst queue for each lane's two connections (the gauge counts the requests waiting, not those sent).
        foreach (var lane in new[] { "call", "background" })
            await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!))[$"callrouter_adapter_ari_waiting{{lane=\"{lane}\"}}"] >= 10,
                TimeSpan.FromSeconds(30), $"the {lane} lane never showed the burst waiting for its connections");
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromMinutes(2));

        Assert.All(channels, c =>
        {
            Assert.Null(c.App);
            Assert.Equal((CallStatus.Success, DispositionReason.Claimed, "sales"),
                (c.Variables[CallHandover.StatusVariable], c.Variables[CallHandover.ReasonVariable], c.Variables[CallHandover.WinnerVariable]));
        });
        // Every channel stays up: each must end up subscribed (for its CDR), none lost to a timed-out subscription.
        await Eventually.True(() => Stack.Ari.SubscribedChannels(RoutingStack.StasisApp).Count == Calls, TimeSpan.FromMinutes(1),
            () => $"{Stack.Ari.SubscribedChannels(RoutingStack.StasisApp).Count} of {Calls} channels subscribed");
        Assert.Equal(channels.Select(c => c.Id).Order(), Stack.Ari.SubscribedChannels(RoutingStack.StasisApp).Order());

        // A call is counted once the continue's answer is back at the adapter, which can be after the channel moved on.
        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!)).Sum("callrouter_adapter_endings_total") == Calls, TimeSpan.FromSeconds(30),
            "not every call was counted as it left");
        var scrape = await Scrape.Of(Stack.Adapter!);
        Assert.Contains("callrouter_adapter_ari_request_failures_total", scrape.Samples.Keys);
        Assert.Contains("callrouter_adapter_ari_background_shed_total", scrape.Samples.Keys);
        Assert.Equal(0, scrape["callrouter_adapter_ari_request_failures_total"]);
        Assert.Equal(0, scrape["callrouter_adapter_ari_background_shed_total"]);
        Assert.Equal(Calls, scrape["callrouter_adapter_endings_total{reason=\"claimed\",status=\"SUCCESS\"}"]);
        Assert.Equal(0, scrape.Sum("callrouter_adapter_failed_total"));
        // Both lanes drain to exactly 0 (the gauges are never negative, so a sum of 0 is 0 on each).
        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!)).Sum("callrouter_adapter_ari_waiting") == 0, TimeSpan.FromSeconds(10),
            "ARI requests still wait after every call and subscription is done");
    }
}
