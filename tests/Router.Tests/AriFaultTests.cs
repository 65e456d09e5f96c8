using System.Collections.Concurrent;
using System.Diagnostics;
using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>
/// No call stays in Stasis whatever ARI does: 5xx, resets and answers slower than the request timeout are retried or
/// fall back to the dialplan as FAILED/ari-error, and a dropped WebSocket mid-run strands nothing.
/// </summary>
public sealed class AriFaultTests : RoutingTest
{
    // Slower than the request timeout, which is generous: the test machine may be loaded, and a spurious timeout
    // would turn an expected SUCCESS into an ari-error.
    private static readonly TimeSpan Slow = TimeSpan.FromSeconds(3);
    private readonly ITestOutputHelper _output;

    public AriFaultTests(ITestOutputHelper output)
    {
        _output = output;
        Stack.AdapterSettings["Adapter:AriRequestTimeout"] = "00:00:01";
        Stack.AdapterSettings["Adapter:AriRequestRetries"] = "2";
        Stack.AdapterSettings["Adapter:HandoverTimeout"] = "00:00:04";
    }

    /// <summary>What ARI does to a call's requests, and how the call must leave.</summary>
    private enum Fault
    {
        None,
        ContinueFailsTwice,
        FirstVariableSetReset,
        ContinueAnswersLate,
        ContinueStartsLate,
        ContinueFailsThrice,
    }

    [Fact]
    public async Task Under_load_with_ari_faults_and_websocket_drops_every_call_leaves_stasis_with_the_expected_status()
    {
        var sales = await Stack.AddApp("sales");
        var faults = new ConcurrentDictionary<string, Fault>();
        var attempts = new ConcurrentDictionary<(string, string), int>();
        Stack.Ari.Faults = (operation, channelId) =>
        {
            if (channelId is null || !faults.TryGetValue(channelId, out var fault) || operation is not ("variable" or "continue"))
                return null;
            var attempt = attempts.AddOrUpdate((channelId, operation), 1, (_, n) => n + 1);
            return (fault, operation, attempt) switch
            {
                (Fault.ContinueFailsTwice, "continue", <= 2) => new AriFault(AriFaultKind.ServerError),
                (Fault.FirstVariableSetReset, "variable", 1) => new AriFault(AriFaultKind.Reset),
                (Fault.ContinueAnswersLate, "continue", 1) => new AriFault(AriFaultKind.SlowAnswer, Slow),
                (Fault.ContinueStartsLate, "continue", 1) => new AriFault(AriFaultKind.SlowStart, Slow),
                // One attempt and two retries fail: the decision cannot be handed over, its ari-error fallback can.
                (Fault.ContinueFailsThrice, "continue", <= 3) => new AriFault(AriFaultKind.ServerError),
                _ => null,
            };
        };

        const int calls = 300;
        var kinds = Enum.GetValues<Fault>();
        var channels = new List<(SimChannel Channel, Fault Fault)>();
        var started = Stopwatch.StartNew();
        for (var i = 0; i < calls; i++)
        {
            var id = $"fault-{i}";
            var fault = kinds[i % kinds.Length];
            faults[id] = fault;
            channels.Add((Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"], channelId: id), fault));
            if (i is 100 or 200)
                Stack.Ari.DisconnectApp(RoutingStack.StasisApp); // the adapter reconnects by itself
            await Task.Delay(10);
        }

        await Task.WhenAll(channels.Select(c => c.Channel.Handover)).WaitAsync(TimeSpan.FromSeconds(60));
        _output.WriteLine($"{calls} calls left Stasis {started.ElapsedMilliseconds} ms after the first; {Stack.Ari.FaultCount} faults injected");

        var gap = 0;
        var ariErrors = 0;
        foreach (var (channel, fault) in channels)
        {
            Assert.Null(channel.App);
            if (channel.StasisStatus == "FAILED")
            {
                // Reached Stasis while the adapter's WebSocket was down: Asterisk's own failure, no ROUTER_* at all.
                Assert.Empty(channel.Variables);
                gap++;
                continue;
            }
            Assert.True(Guid.TryParse(channel.Variables[CallHandover.CallIdVariable], out _));
            // Said in full when it fails: which way the call left tells which path lost its winner.
            Assert.True(channel.Variables.GetValueOrDefault(CallHandover.WinnerVariable) == "sales",
                $"channel {channel.Id} ({fault}) left as {string.Join(", ", channel.Variables.OrderBy(v => v.Key).Select(v => $"{v.Key}={v.Value}"))}");
            if (fault == Fault.ContinueFailsThrice)
            {
                ariErrors++;
                Assert.Equal(CallStatus.Failed, channel.Variables[CallHandover.StatusVariable]);
                Assert.Equal(DispositionReason.AriError, channel.Variables[CallHandover.ReasonVariable]);
                Assert.StartsWith("SUCCESS/claimed handover failed: ", channel.Variables[CallHandover.DetailVariable]);
            }
            else
            {
                Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
                Assert.Equal(DispositionReason.Claimed, channel.Variables[CallHandover.ReasonVariable]);
            }
        }
        _output.WriteLine($"{gap} calls reached Stasis during the two WebSocket gaps; {ariErrors} fell back as ari-error");
        Assert.InRange(gap, 1, calls / 3); // the drops did happen; the reconnect is quick (the back-off starts at 200 ms)

        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!)).Sum("callrouter_adapter_endings_total") == calls - gap,
            TimeSpan.FromSeconds(10), "every call that reached the adapter is counted once as it leaves");
        var scrape = await Scrape.Of(Stack.Adapter!);
        Assert.Equal(ariErrors, scrape["callrouter_adapter_failed_total{reason=\"ari-error\"}"]);
        Assert.Equal(0, scrape["callrouter_adapter_handovers_stuck_total"]);
        Assert.Equal(2, scrape["callrouter_adapter_ari_reconnects_total"]);

        // The winner was told `accepted` for every call; it hears of each one that fell back FAILED.
        await Eventually.True(() => sales.FailedNotices.Count == ariErrors, TimeSpan.FromSeconds(10),
            $"the winner heard of {sales.FailedNotices.Count} failed calls, not {ariErrors}");
        Assert.All(sales.FailedNotices, n => Assert.Equal((CallStatus.Failed, DispositionReason.AriError), (n.Status, n.Reason)));
    }

    [Fact]
    public async Task A_channel_whose_every_continue_fails_is_retried_until_it_leaves_and_is_counted_as_stuck()
    {
        await Stack.AddApp("sales");
        var failing = true;
        Stack.Ari.Faults = (operation, _) => operation == "continue" && Volatile.Read(ref failing) ? new AriFault(AriFaultKind.ServerError) : null;
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=500"]);

        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_handovers_stuck_total"] == 1,
            TimeSpan.FromSeconds(20), "the stuck handover was never counted");
        Assert.Equal(RoutingStack.StasisApp, channel.App);
        Volatile.Write(ref failing, false);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Null(channel.App);
        Assert.Equal(CallStatus.Failed, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.AriError, channel.Variables[CallHandover.ReasonVariable]);
    }

    [Fact]
    public async Task A_channel_whose_requests_fail_while_it_hangs_up_is_simply_finished()
    {
        await Stack.AddApp("sales");
        SimChannel? channel = null;
        var continues = 0;
        Stack.Ari.Faults = (operation, _) =>
        {
            if (operation != "continue" || Interlocked.Increment(ref continues) > 1)
                return null;
            Stack.Ari.HangupAsync(channel!.Id).Wait();
            return new AriFault(AriFaultKind.ServerError);
        };
        channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=500"]);
        await channel.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));

        // The retry finds the channel gone (404): nothing is stuck, and no ari-error is counted for it.
        await Eventually.True(async () => (await Scrape.Of(Stack.Adapter!)).Sum("callrouter_adapter_endings_total") == 1,
            TimeSpan.FromSeconds(10), "the call's ending was never counted");
        var scrape = await Scrape.Of(Stack.Adapter!);
        Assert.Equal(0, scrape["callrouter_adapter_handovers_stuck_total"]);
        Assert.Equal(0, scrape["callrouter_adapter_failed_total{reason=\"ari-error\"}"]);
    }
}
