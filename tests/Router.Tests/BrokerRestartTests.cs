using System.Collections.Concurrent;
using System.Diagnostics;
using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Router.Saga;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>
/// Issue 9.2: the broker restarts while calls flow. The test has a broker of its own (a container) and stops and
/// starts it; router, adapter and apps reconnect by themselves, no call is stranded, and routing resumes.
/// </summary>
public sealed class BrokerRestartTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly RoutingStack _stack = new();
    private BrokerContainer _broker = null!;

    public async Task InitializeAsync()
    {
        _broker = await BrokerContainer.Start();
        _stack.BrokerFactory = () => Task.FromResult(TestBroker.Of(_broker.Options));
        await _stack.InitializeAsync();
    }

    [Fact]
    public async Task A_broker_restart_mid_traffic_strands_no_call_keeps_the_ari_socket_and_routing_resumes()
    {
        foreach (var app in new[] { "red", "green", "blue" })
            await _stack.AddApp(app);
        var calls = new ConcurrentQueue<(SimChannel Channel, long OfferedAt)>();
        using var stopTraffic = new CancellationTokenSource();
        // A steady 20 calls/s for the whole test, each with a 1 s claim window.
        var traffic = Task.Run(async () =>
        {
            using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
            while (await tick.WaitForNextTickAsync(stopTraffic.Token).ConfigureAwait(false))
                calls.Enqueue((_stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=1000"]), Stopwatch.GetTimestamp()));
        });

        await Eventually.True(() => Won(calls) >= 20, TimeSpan.FromSeconds(30), "no routing before the restart");
        var stoppedAt = Stopwatch.GetTimestamp();
        await _broker.Stop();
        // The broker stays away long enough for calls to be offered, and to fall back, while it is down.
        var offeredBefore = calls.Count;
        await Eventually.True(() => calls.Count >= offeredBefore + 40, TimeSpan.FromSeconds(30), "no calls offered during the outage");
        await _broker.StartAgain();
        var backAt = Stopwatch.GetTimestamp();

        // Routing resumes: a call offered after the broker is back is won, and then 40 in a row are.
        var resumed = await FirstWonOfferedAfter(calls, backAt, TimeSpan.FromSeconds(60));
        var resumedAt = calls.Where(c => c.Channel == resumed).Single().OfferedAt;
        var countAtResume = calls.Count;
        await Eventually.True(() => calls.Count >= countAtResume + 40, TimeSpan.FromSeconds(30), "traffic stopped");
        await stopTraffic.CancelAsync();
        await traffic.ContinueWith(_ => { }, TaskScheduler.Default);

        // Every channel leaves Stasis with a ROUTER_STATUS: timeout 1 s + grace 0.5 s, and generous slack for a loaded machine.
        var all = calls.ToArray();
        foreach (var (channel, _) in all)
            await channel.Handover.WaitAsync(TimeSpan.FromSeconds(30));
        var statuses = all.GroupBy(c => $"{c.Channel.Variables.GetValueOrDefault(CallHandover.StatusVariable)}/{c.Channel.Variables.GetValueOrDefault(CallHandover.ReasonVariable)}")
            .ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine($"{all.Length} calls: {string.Join(", ", statuses.Select(s => $"{s.Key} {s.Value}"))}");
        output.WriteLine($"broker down {Stopwatch.GetElapsedTime(stoppedAt, backAt).TotalSeconds:F1} s; first won call offered " +
            $"{Stopwatch.GetElapsedTime(backAt, resumedAt).TotalSeconds:F1} s after the broker was back");

        Assert.All(all, c => Assert.Contains(c.Channel.Variables.GetValueOrDefault(CallHandover.StatusVariable),
            new[] { CallStatus.Success, CallStatus.Timeout, CallStatus.Failed }));
        Assert.All(all, c => Assert.NotEqual(RoutingStack.StasisApp, c.Channel.App));
        Assert.True(statuses.Keys.Any(k => k.StartsWith(CallStatus.Timeout) || k.StartsWith(CallStatus.Failed)), "no call met the outage");
        // Once routing is back it stays back: every call offered after the first resumed one is won.
        var after = all.Where(c => c.OfferedAt > resumedAt).ToArray();
        Assert.All(after, c => Assert.Equal(CallStatus.Success, c.Channel.Variables[CallHandover.StatusVariable]));
        Assert.All(all.Where(c => c.Channel.Variables[CallHandover.StatusVariable] == CallStatus.Success),
            c => Assert.Contains(c.Channel.Variables[CallHandover.WinnerVariable], new[] { "red", "green", "blue" }));
        Assert.InRange(Stopwatch.GetElapsedTime(backAt, resumedAt), TimeSpan.Zero, TimeSpan.FromSeconds(15));
        // The broker's outage did not touch the adapter's ARI WebSocket.
        Assert.Equal(0, _stack.Adapter!.Services.GetRequiredService<AriEventStream>().Reconnects);
        // Every call is forgotten in the end, those whose timers fell due while the broker was away too (they are set
        // again until it takes them): no saga is left in the router's memory.
        var sagas = _stack.Router!.Services.GetRequiredService<MassTransit.InMemorySagaRepository<CallState>>();
        await Eventually.True(() => sagas.Count == 0, TimeSpan.FromSeconds(60), () => $"{sagas.Count} sagas never forgotten");
    }

    private static int Won(IEnumerable<(SimChannel Channel, long OfferedAt)> calls) =>
        calls.Count(c => c.Channel.Handover.IsCompleted && c.Channel.Variables.GetValueOrDefault(CallHandover.StatusVariable) == CallStatus.Success);

    private static async Task<SimChannel> FirstWonOfferedAfter(ConcurrentQueue<(SimChannel Channel, long OfferedAt)> calls, long after, TimeSpan within)
    {
        SimChannel? won = null;
        await Eventually.True(() =>
        {
            won = calls.Where(c => c.OfferedAt > after && c.Channel.Handover.IsCompleted
                    && c.Channel.Variables.GetValueOrDefault(CallHandover.StatusVariable) == CallStatus.Success)
                .OrderBy(c => c.OfferedAt).Select(c => c.Channel).FirstOrDefault();
            return won is not null;
        }, within, "routing never resumed after the broker came back");
        return won!;
    }

    public async Task DisposeAsync()
    {
        await _stack.DisposeAsync();
        await _broker.DisposeAsync();
    }
}
