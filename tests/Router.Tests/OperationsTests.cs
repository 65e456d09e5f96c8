using System.Net;
using System.Text.Json;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>/metrics counts exactly what happened; /health/ready follows the broker and ARI connections.</summary>
public sealed class OperationsTests : RoutingTest
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    public OperationsTests()
    {
        // A claim for an unknown call is answered "not-found" after this grace; short, so the test does not wait 2 s.
        Stack.RouterSettings["Router:UnknownCallGrace"] = "00:00:00.200";
    }

    [Fact]
    public async Task Metrics_count_every_claim_win_timeout_and_failure_exactly()
    {
        var alpha = await Stack.AddApp("alpha");
        var beta = await Stack.AddApp("beta", autoClaim: false);

        var won = Enumerable.Range(0, 3).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "filter=^alpha$"])).ToList();
        var timedOut = Enumerable.Range(0, 2).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=300", "filter=^beta$"])).ToList();
        var noLiveApp = Enumerable.Range(0, 2).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "filter=^nobody$"])).ToList();
        var badOptions = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=soon"]);
        await Task.WhenAll(won.Concat(timedOut).Concat(noLiveApp).Append(badOptions).Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(won, c => Assert.Equal("alpha", c.Variables.GetValueOrDefault(CallHandover.WinnerVariable, string.Join(",", c.Variables.Select(v => $"{v.Key}={v.Value}")))));
        Assert.All(timedOut, c => Assert.Equal(CallStatus.Timeout, c.Variables[CallHandover.StatusVariable]));

        // Claims the router turns down: a call already won, a call timed out, a call it never saw.
        var wonCallId = Guid.Parse(won[0].Variables[CallHandover.CallIdVariable]);
        var timedOutCallId = Guid.Parse(timedOut[0].Variables[CallHandover.CallIdVariable]);
        Assert.Equal(RejectReason.AlreadyClaimed, (await beta.Claim(wonCallId)).Reason);
        Assert.Equal(RejectReason.Finished, (await beta.Claim(timedOutCallId)).Reason);
        Assert.Equal(RejectReason.NotFound, (await beta.Claim(Guid.NewGuid())).Reason);

        // The router counts a reply as it sends it; the adapter counts a handover once ARI has answered it.
        await Eventually.True(() => alpha.Replies.Count == 3, TimeSpan.FromSeconds(10), "alpha's claims were not all answered");
        await EventuallyMetric(Stack.Adapter!, s => s.Sum("callrouter_adapter_endings_total") >= 8, "the adapter has not counted 8 endings");

        var router = await Scrape.Of(Stack.Router!);
        Assert.Equal(3, router["callrouter_router_wins_total{app=\"alpha\"}"]);
        Assert.Equal(3, router.Sum("callrouter_router_wins_total"));
        Assert.Equal(2, router["callrouter_router_timeouts_total{app=\"beta\"}"]);
        Assert.Equal(2, router.Sum("callrouter_router_timeouts_total"));
        Assert.Equal(3, router["callrouter_router_claims_total{app=\"alpha\",outcome=\"accepted\"}"]);
        Assert.Equal(1, router["callrouter_router_claims_total{app=\"_unknown\",outcome=\"already-claimed\"}"]); // beta was not offered that call
        Assert.Equal(1, router["callrouter_router_claims_total{app=\"beta\",outcome=\"finished\"}"]);
        Assert.Equal(1, router["callrouter_router_claims_total{app=\"_unknown\",outcome=\"not-found\"}"]);
        Assert.Equal(6, router.Sum("callrouter_router_claims_total"));
        Assert.Equal(3, router["callrouter_router_decisions_total{reason=\"claimed\",status=\"SUCCESS\"}"]);
        Assert.Equal(2, router["callrouter_router_decisions_total{reason=\"no-claim\",status=\"TIMEOUT\"}"]);
        Assert.Equal(0, router.Sum("callrouter_router_failed_total"));

        var adapter = await Scrape.Of(Stack.Adapter!);
        Assert.Equal(5, adapter["callrouter_adapter_broadcasts_total"]);
        Assert.Equal(2, adapter["callrouter_adapter_failed_total{reason=\"no-live-app\"}"]);
        Assert.Equal(1, adapter["callrouter_adapter_failed_total{reason=\"invalid-options\"}"]);
        Assert.Equal(3, adapter.Sum("callrouter_adapter_failed_total"));
        Assert.Equal(3, adapter["callrouter_adapter_endings_total{reason=\"claimed\",status=\"SUCCESS\"}"]);
        Assert.Equal(2, adapter["callrouter_adapter_endings_total{reason=\"no-claim\",status=\"TIMEOUT\"}"]);
        Assert.Equal(3, adapter["callrouter_adapter_decision_latency_seconds_count{status=\"SUCCESS\"}"]);
        Assert.Equal(2, adapter["callrouter_adapter_decision_latency_seconds_count{status=\"TIMEOUT\"}"]);
        Assert.Equal(5, adapter.Sum("callrouter_adapter_decision_latency_seconds_count"));
        Assert.Equal(3, adapter["callrouter_adapter_decision_latency_seconds_bucket{status=\"SUCCESS\",le=\"+Inf\"}"]);
        // Timeouts are decided at the 300 ms deadline: none in the buckets below it, all of them by 5 s.
        Assert.Equal(0, adapter["callrouter_adapter_decision_latency_seconds_bucket{status=\"TIMEOUT\",le=\"0.25\"}"]);
        Assert.Equal(2, adapter["callrouter_adapter_decision_latency_seconds_bucket{status=\"TIMEOUT\",le=\"5\"}"]);
        Assert.Equal(0, adapter["callrouter_adapter_open_broadcasts"]);
        Assert.Equal(1, adapter["callrouter_adapter_live_apps{app=\"alpha\"}"]);
        Assert.Equal(1, adapter["callrouter_adapter_live_apps{app=\"beta\"}"]);
        Assert.Equal(1, adapter["callrouter_adapter_ari_connected"]);
        Assert.Equal(1, adapter["callrouter_adapter_broker_connected"]);
        Assert.Equal(0, adapter["callrouter_adapter_ari_reconnects_total"]);
        Assert.Equal(1, adapter[$"callrouter_adapter_info{{node=\"{RoutingStack.Node}\",stasis_app=\"{RoutingStack.StasisApp}\"}}"]);
    }

    [Fact]
    public async Task An_open_broadcast_is_counted_until_it_is_decided_and_a_hangup_is_reported_to_the_router()
    {
        var silent = await Stack.AddApp("silent", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>();
        silent.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=10000"]);
        await offered.Task.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(1, (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_open_broadcasts"]);

        await Stack.Ari.HangupAsync(channel.Id);
        await EventuallyMetric(Stack.Router!, s => s.Sum("callrouter_router_reported_endings_total") >= 1, "the router never counted the hang-up");
        var adapter = await Scrape.Of(Stack.Adapter!);
        var router = await Scrape.Of(Stack.Router!);
        Assert.Equal(0, adapter["callrouter_adapter_open_broadcasts"]);
        Assert.Equal(1, adapter["callrouter_adapter_endings_total{reason=\"caller-hangup\",status=\"ABANDONED\"}"]);
        Assert.Equal(0, adapter.Sum("callrouter_adapter_decision_latency_seconds_count"));
        Assert.Equal(1, router["callrouter_router_reported_endings_total{reason=\"caller-hangup\",status=\"ABANDONED\"}"]);
        Assert.Equal(0, router.Sum("callrouter_router_decisions_total"));
    }

    [Fact]
    public async Task Ready_with_everything_up_then_503_naming_ari_when_the_websocket_is_down()
    {
        Assert.Equal(HttpStatusCode.OK, (await Get(Stack.Router!, "/health/live")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Get(Stack.Adapter!, "/health/live")).Status);
        var router = await Get(Stack.Router!, "/health/ready");
        var adapter = await Get(Stack.Adapter!, "/health/ready");
        Assert.Equal(HttpStatusCode.OK, router.Status);
        Assert.Equal(HttpStatusCode.OK, adapter.Status);
        Assert.Equal("ready", adapter.Body.GetProperty("status").GetString());
        Assert.Equal("up", adapter.Body.GetProperty("checks").GetProperty("ari").GetString());
        Assert.Equal("up", adapter.Body.GetProperty("checks").GetProperty("broker").GetString());

        // The simulator drops the app's WebSocket: the adapter reconnects, and says so in its metrics.
        Stack.Ari.DisconnectApp(RoutingStack.StasisApp);
        await EventuallyMetric(Stack.Adapter!, s => s["callrouter_adapter_ari_reconnects_total"] >= 1, "the adapter never reconnected");
        Assert.Equal(1, (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_ari_reconnects_total"]);

        // Asterisk gone: the WebSocket stays down.
        await Stack.Ari.DisposeAsync();
        await Eventually.True(() => Get(Stack.Adapter!, "/health/ready").Result.Status == HttpStatusCode.ServiceUnavailable,
            TimeSpan.FromSeconds(10), "the adapter stayed ready with ARI down");
        adapter = await Get(Stack.Adapter!, "/health/ready");
        Assert.Equal("not-ready", adapter.Body.GetProperty("status").GetString());
        Assert.Equal(["ari"], adapter.Body.GetProperty("down").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("ARI WebSocket is not connected", adapter.Body.GetProperty("checks").GetProperty("ari").GetString());
        Assert.Equal(0, (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_ari_connected"]);
        Assert.Equal(HttpStatusCode.OK, (await Get(Stack.Router!, "/health/ready")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Get(Stack.Adapter!, "/health/live")).Status);
    }

    [Fact]
    public async Task Ready_is_503_naming_the_broker_when_rabbitmq_is_unreachable()
    {
        Assert.Equal(HttpStatusCode.OK, (await Get(Stack.Router!, "/health/ready")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Get(Stack.Adapter!, "/health/ready")).Status);

        // Deleting the virtual host closes every connection to it, and none can be made again.
        await Stack.Broker.DeleteVirtualHost();
        await Eventually.True(() => Get(Stack.Adapter!, "/health/ready").Result.Status == HttpStatusCode.ServiceUnavailable,
            TimeSpan.FromSeconds(15), "the adapter stayed ready with the broker gone");
        await Eventually.True(() => Get(Stack.Router!, "/health/ready").Result.Status == HttpStatusCode.ServiceUnavailable,
            TimeSpan.FromSeconds(15), "the router stayed ready with the broker gone");

        var adapter = await Get(Stack.Adapter!, "/health/ready");
        Assert.Equal(["broker"], adapter.Body.GetProperty("down").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("RabbitMQ connection is not open", adapter.Body.GetProperty("checks").GetProperty("broker").GetString());
        var router = await Get(Stack.Router!, "/health/ready");
        Assert.Equal(["broker"], router.Body.GetProperty("down").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(0, (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_broker_connected"]);
        Assert.Equal(HttpStatusCode.OK, (await Get(Stack.Router!, "/health/live")).Status);
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> Get(Microsoft.Extensions.Hosting.IHost host, string path)
    {
        var response = await Http.GetAsync(new Uri(RoutingStack.HttpAddress(host), path));
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
        return (response.StatusCode, body);
    }

    private static async Task EventuallyMetric(Microsoft.Extensions.Hosting.IHost host, Func<Scrape, bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition(await Scrape.Of(host)))
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException(failure);
            await Task.Delay(20);
        }
    }
}
