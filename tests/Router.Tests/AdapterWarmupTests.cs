using System.Net;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Demo;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>An adapter that starts while apps are already heartbeating learns them before it fails any call as no-live-app.</summary>
public sealed class AdapterWarmupTests : RoutingTest
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task An_adapter_started_between_two_heartbeats_offers_its_first_calls_and_is_not_ready_until_it_knows()
    {
        await Stack.StopAdapter();
        // Heartbeats every 2 s, the contract's longest interval: the new adapter misses the first one.
        await using var sales = new ClaimantApp(Stack.Broker.Options, "sales") { HeartbeatInterval = TimeSpan.FromSeconds(2) };
        await sales.Start();
        Stack.AdapterSettings["Adapter:AppWarmup"] = "00:00:03";
        using var adapter = await Stack.StartAdapterFor(Stack.Ari, RoutingStack.Node, untilReady: false);
        try
        {
            var ready = await Http.GetAsync(new Uri(RoutingStack.HttpAddress(adapter), "/health/ready"));
            var channels = Enumerable.Range(0, 5).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"])).ToList();
            await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(15));

            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Contains("\"apps\"", await ready.Content.ReadAsStringAsync());
            Assert.All(channels, c =>
            {
                Assert.Equal(CallStatus.Success, c.Variables[CallHandover.StatusVariable]);
                Assert.Equal("sales", c.Variables[CallHandover.WinnerVariable]);
            });
            await Eventually.True(async () => (await Http.GetAsync(new Uri(RoutingStack.HttpAddress(adapter), "/health/ready"))).IsSuccessStatusCode,
                TimeSpan.FromSeconds(15), "the adapter never became ready");
        }
        finally
        {
            await adapter.StopAsync();
        }
    }

    [Fact]
    public async Task Once_it_knows_the_live_apps_a_call_no_app_matches_still_fails_at_once()
    {
        await Stack.AddApp("sales");
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "filter=^billing$"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(CallStatus.Failed, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.NoLiveApp, channel.Variables[CallHandover.ReasonVariable]);
    }
}
