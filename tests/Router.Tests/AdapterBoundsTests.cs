using CallRouter.AsteriskAdapter;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Xunit;

namespace CallRouter.Tests;

/// <summary>The adapter's tables have bounds: recovered channels, quiet apps.</summary>
public sealed class AdapterBoundsTests : RoutingTest
{
    [Fact]
    public async Task Channels_recovered_at_a_restart_leave_the_recovered_set_once_they_have_left_the_app()
    {
        var app = await Stack.AddApp("sales", autoClaim: false);
        var offered = 0;
        app.BroadcastReceived += _ => Interlocked.Increment(ref offered);
        var channels = Enumerable.Range(0, 5).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"])).ToList();
        await Eventually.True(() => Volatile.Read(ref offered) == 5, TimeSpan.FromSeconds(10), "the calls were never offered");

        await Stack.StopAdapter();
        await Stack.StartAdapter();
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.All(channels, c => Assert.Equal(DispositionReason.AdapterRestarted, c.Variables[CallHandover.ReasonVariable]));
        var dispatcher = Stack.Adapter!.Services.GetRequiredService<CallDispatcher>();
        await Eventually.True(() => dispatcher.RecoveredCount == 0, TimeSpan.FromSeconds(10),
            $"{dispatcher.RecoveredCount} recovered channels are still remembered after they left the app");
    }

    [Fact]
    public void An_app_quiet_for_ten_minutes_is_forgotten()
    {
        var clock = new ManualClock();
        var live = new LiveApps(Options.Create(new AdapterOptions { AppLivenessTimeout = TimeSpan.FromSeconds(6) }), clock);
        live.Seen("ghost");
        live.Seen("sales");

        clock.Advance(TimeSpan.FromMinutes(9));
        live.Seen("sales");
        Assert.Equal([("ghost", false), ("sales", true)], live.Snapshot().OrderBy(a => a.App));

        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal([("sales", false)], live.Snapshot());
    }

    private sealed class ManualClock : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 11, 28, 9, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
