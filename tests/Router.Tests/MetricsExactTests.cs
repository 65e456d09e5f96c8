using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Router.Observability;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// The router's counters after a mixed run (wins, lost races, timeouts, an abandoned call, failures, refused claims)
/// equal what happened, counted once each, with sagas in memory and in PostgreSQL; app names nobody was offered a
/// call under make no series.
/// </summary>
public abstract class MetricsExactTests : PostgresStackTest
{
    protected override void Configure(RoutingStack stack)
    {
        stack.RouterSettings["Router:UnknownCallGrace"] = "00:00:00.200";
        // Forgotten (and so recorded) only after the won calls' 1 s deadline.
        stack.RouterSettings["Router:FinishedRetention"] = "00:00:01.500";
        // The router's TIMEOUT decisions must reach the adapter before it falls back alone (which it would report as a
        // router-no-answer ending): a generous grace, as a loaded test machine can hold a decision for half a second.
        stack.AdapterSettings["Adapter:FallbackGrace"] = "00:00:02";
    }

    [Fact]
    public async Task Every_event_is_counted_once()
    {
        var alpha = await Stack.AddApp("alpha");
        var beta = await Stack.AddApp("beta", autoClaim: false);
        var betaOffers = new System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource<CallBroadcast>>();
        beta.BroadcastReceived += b => betaOffers.GetOrAdd(b.ChannelId, _ => new()).TrySetResult(b);

        var won = Enumerable.Range(0, 3).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=1000", "filter=^(alpha|beta)$"])).ToList();
        var timedOut = Enumerable.Range(0, 2).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=300", "filter=^beta$"])).ToList();
        var noLiveApp = Enumerable.Range(0, 2).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "filter=^nobody$"])).ToList();
        var abandoned = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "filter=^beta$"]);
        await betaOffers.GetOrAdd(abandoned.Id, _ => new()).Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Stack.Ari.HangupAsync(abandoned.Id);
        await Task.WhenAll(won.Concat(timedOut).Concat(noLiveApp).Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(won, c => Assert.Equal("alpha", c.Variables.GetValueOrDefault(CallHandover.WinnerVariable)));

        // Lost races, a late claim, and claims under names no call was offered to.
        foreach (var call in won)
            Assert.Equal(RejectReason.AlreadyClaimed, (await beta.Claim(Guid.Parse(call.Variables[CallHandover.CallIdVariable]))).Reason);
        Assert.Equal(RejectReason.Finished, (await beta.Claim(Guid.Parse(timedOut[0].Variables[CallHandover.CallIdVariable]))).Reason);
        var wonCallId = Guid.Parse(won[0].Variables[CallHandover.CallIdVariable]);
        string Random() => "rnd" + Guid.NewGuid().ToString("N")[..8];
        Assert.Equal(RejectReason.AlreadyClaimed, (await beta.ClaimRaw(Wire.Serialize(new ClaimCall(wonCallId, Random(), null, null, null)))).Reason);
        Assert.Equal(RejectReason.NotFound, (await beta.ClaimRaw(Wire.Serialize(new ClaimCall(Guid.NewGuid(), Random(), null, null, null)))).Reason);
        Assert.Equal(RejectReason.Forbidden,
            (await beta.ClaimRaw(Wire.Serialize(new ClaimCall(wonCallId, Random(), null, null, null)), properties: p => p.UserId = null)).Reason);

        // Every call is recorded once the router has forgotten it, after the won calls' deadline.
        await WaitForCdrs(8, TimeSpan.FromSeconds(30));
        var router = await Scrape.Of(Stack.Router!);
        var unknown = RouterMetrics.UnknownApp;

        Assert.Equal(3, router["callrouter_router_wins_total{app=\"alpha\"}"]);
        Assert.Equal(3, router.Sum("callrouter_router_wins_total"));
        Assert.Equal(3, router["callrouter_router_decisions_total{reason=\"claimed\",status=\"SUCCESS\"}"]);
        Assert.Equal(2, router["callrouter_router_decisions_total{reason=\"no-claim\",status=\"TIMEOUT\"}"]);
        Assert.Equal(5, router.Sum("callrouter_router_decisions_total"));
        Assert.Equal(2, router["callrouter_router_timeouts_total{app=\"beta\"}"]);
        Assert.Equal(2, router.Sum("callrouter_router_timeouts_total"));
        Assert.Equal(1, router["callrouter_router_reported_endings_total{reason=\"caller-hangup\",status=\"ABANDONED\"}"]);
        Assert.Equal(1, router.Sum("callrouter_router_reported_endings_total"));
        Assert.Equal(3, router["callrouter_router_claims_total{app=\"alpha\",outcome=\"accepted\"}"]);
        Assert.Equal(3, router["callrouter_router_claims_total{app=\"beta\",outcome=\"already-claimed\"}"]);
        Assert.Equal(1, router["callrouter_router_claims_total{app=\"beta\",outcome=\"finished\"}"]);
        Assert.Equal(1, router[$"callrouter_router_claims_total{{app=\"{unknown}\",outcome=\"already-claimed\"}}"]);
        Assert.Equal(1, router[$"callrouter_router_claims_total{{app=\"{unknown}\",outcome=\"not-found\"}}"]);
        Assert.Equal(1, router[$"callrouter_router_claims_total{{app=\"{unknown}\",outcome=\"forbidden\"}}"]);
        Assert.Equal(10, router.Sum("callrouter_router_claims_total"));
        Assert.DoesNotContain("app=\"rnd", router.Text);
    }
}

public sealed class MetricsExactInMemoryTests : MetricsExactTests;

public sealed class MetricsExactInPostgresTests : MetricsExactTests
{
    protected override bool SagasInPostgres => true;
}
