using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// An app told "accepted" always gets the call, with the router's or the adapter's clock skewed by far more than the
/// adapter's fallback grace (500 ms here) either way: the router measures each call's window on its own clock.
/// </summary>
public sealed class ClockSkewTests : RoutingTest
{
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(3);

    [Theory]
    [InlineData(-1, 0)] // router behind: it used to accept claims for 3 s after the adapter had fallen back
    [InlineData(+1, 0)] // router ahead: it used to refuse every claim and time every call out at once
    [InlineData(0, +1)] // adapter ahead: its deadline stamp lay 3 s in the router's future
    public async Task Accepted_means_handed_over_whatever_the_clocks_say(int routerSkew, int adapterSkew)
    {
        if (routerSkew != 0)
            Stack.ConfigureRouterServices = s => s.AddSingleton<TimeProvider>(new SkewedClock(Skew * routerSkew));
        if (adapterSkew != 0)
            Stack.ConfigureAdapterServices = s => s.AddSingleton<TimeProvider>(new SkewedClock(Skew * adapterSkew));
        await Stack.StopAdapter();
        await Stack.StopRouter();
        await Stack.StartRouter();
        await Stack.StartAdapter();
        var app = await Stack.AddApp("sales", autoClaim: false);
        var offers = new System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource<CallBroadcast>>();
        app.BroadcastReceived += b => offers.GetOrAdd(b.ChannelId, _ => new()).TrySetResult(b);

        // Claimed at once: accepted, and the call goes to the app.
        var claimed = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=1500"]);
        var offer = await offers.GetOrAdd(claimed.Id, _ => new()).Task.WaitAsync(TimeSpan.FromSeconds(10));
        var reply = await app.Claim(offer.CallId);
        Assert.True(reply.Accepted, $"a claim at once was refused: {reply.Reason} {reply.Detail}");
        await claimed.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("sales", claimed.Variables.GetValueOrDefault(CallHandover.WinnerVariable));
        Assert.Equal(CallStatus.Success, claimed.Variables[CallHandover.StatusVariable]);

        // Not claimed before the deadline: the call leaves Stasis at the deadline (timed out by the router, not by the
        // adapter's fallback), and a claim after that is refused.
        var late = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=500"]);
        var lateOffer = await offers.GetOrAdd(late.Id, _ => new()).Task.WaitAsync(TimeSpan.FromSeconds(10));
        await late.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        var lateReply = await app.Claim(lateOffer.CallId);
        Assert.False(lateReply.Accepted, "an app was told 'accepted' for a call that had already left Stasis");
        Assert.Equal(RejectReason.Finished, lateReply.Reason);
        Assert.Equal(CallStatus.Timeout, late.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.NoClaim, late.Variables[CallHandover.ReasonVariable]);
    }

    [Fact]
    public async Task A_claim_window_as_long_as_the_adapters_grace_is_refused_at_start()
    {
        await Stack.StopRouter();
        Stack.RouterSettings["Router:ClaimWindow"] = "00:00:00.500";
        Stack.RouterSettings["Router:AdapterFallbackGrace"] = "00:00:00.500";
        var refused = await Assert.ThrowsAnyAsync<Microsoft.Extensions.Options.OptionsValidationException>(Stack.StartRouter);
        Assert.Contains("Router__ClaimWindow must be shorter than Router__AdapterFallbackGrace", refused.Message);
    }

    /// <summary>The system clock, off by a fixed amount (timers still run on real time, as on a skewed host).</summary>
    private sealed class SkewedClock(TimeSpan skew) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + skew;
    }
}
