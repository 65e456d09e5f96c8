using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using CallRouter.Messages;
using CallRouter.Router;
using CallRouter.Router.Observability;
using CallRouter.Router.Saga;
using CallRouter.Router.Timers;
using CallRouter.Router.Transport;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary>
/// The call saga's transitions on MassTransit's in-memory test harness (no broker, no database): the states reached, the
/// decisions sent and the timers set. Timers are recorded, and fired by publishing their message; the clock stands still.
/// Claims arrive without an AMQP reply_to here, so their answers are read from the claims counter.
/// </summary>
public sealed class CallStateMachineTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);
    private const int TimeoutMs = 1500;

    private readonly RecordingTimers _timers = new();
    private readonly ClaimCounts _claims = new();
    private ServiceProvider _provider = null!;
    private ITestHarness _harness = null!;
    private ISagaStateMachineTestHarness<CallStateMachine, CallState> _saga = null!;

    public async Task InitializeAsync()
    {
        var services = new ServiceCollection()
            .AddSingleton<TimeProvider>(new StoppedClock(Now))
            .AddSingleton<ICallTimers>(_timers)
            .AddSingleton<AdapterClocks>()
            .AddSingleton<RouterMetrics>()
            .AddSingleton<TallyBatcher>();
        services.AddMetrics();
        services.AddOptions<RouterOptions>();
        services.AddMassTransitTestHarness(bus =>
            bus.AddSagaStateMachine<CallStateMachine, CallState, CallStateDefinition>().InMemoryRepository());
        // "Exactly one decision" and "no decision" hold once the bus has been idle this long (waits for a match are not cut short).
        services.AddOptions<TestHarnessOptions>().Configure(o => o.TestInactivityTimeout = TimeSpan.FromMilliseconds(300));
        _provider = services.BuildServiceProvider(validateScopes: true);
        _claims.Listen(_provider.GetRequiredService<IMeterFactory>());
        _harness = _provider.GetRequiredService<ITestHarness>();
        await _harness.Start();
        await _provider.GetRequiredService<TallyBatcher>().StartAsync(default);
        _saga = _harness.GetSagaStateMachineHarness<CallStateMachine, CallState>();
    }

    public async Task DisposeAsync()
    {
        _claims.Dispose();
        await _provider.GetRequiredService<TallyBatcher>().StopAsync(default);
        await _harness.Stop();
        await _provider.DisposeAsync();
    }

    [Fact]
    public async Task Broadcast_then_claim_is_claimed_and_the_adapter_is_told_to_continue_for_the_winner()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales", "support"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Open));
        var deadline = Assert.Single(_timers.Of<BroadcastDeadline>());
        Assert.Equal(new BroadcastDeadline(callId), deadline.Message);
        Assert.Equal(TimeSpan.FromMilliseconds(TimeoutMs), deadline.Lane);
        Assert.False(deadline.Obsolete!());

        var target = new DialplanTarget("from-app", "200", 2);
        await _harness.Bus.Publish(new ClaimCall(callId, "support", target));

        Assert.NotNull(await _saga.Exists(callId, m => m.Claimed));
        var decision = await Decision(callId);
        Assert.Equal(new ContinueCall(callId, "chan-1", CallStatus.Success, "support", DispositionReason.Claimed, target, null, null, Now, Now, 1), decision with { AppArgs = null });
        Assert.Equal((Now + TimeSpan.FromSeconds(10), new ForgetCall(callId)), Single<ForgetCall>());
        Assert.Equal(1, _claims.Count("support", "accepted"));
        var call = _saga.Sagas.Contains(callId)!;
        Assert.Equal(("support", 1, CallStatus.Success), (call.Winner, call.ClaimCount, call.Status));
        // Won: an in-process deadline would only send the decision again, so it is dropped when it falls due.
        Assert.True(deadline.Obsolete!());
    }

    [Fact]
    public async Task Deadline_without_a_claim_ends_the_call_TIMEOUT_no_claim()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Open));

        await _harness.Bus.Publish(new BroadcastDeadline(callId));

        Assert.NotNull(await _saga.Exists(callId, m => m.Ended));
        var decision = await Decision(callId);
        Assert.Equal(new ContinueCall(callId, "chan-1", CallStatus.Timeout, null, DispositionReason.NoClaim, null, null, null, Now, null, 0), decision);
        Assert.Equal((Now + TimeSpan.FromSeconds(10), new ForgetCall(callId)), Single<ForgetCall>());
    }

    [Fact]
    public async Task A_claim_before_the_broadcast_waits_for_it_and_is_then_decided()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));

        Assert.NotNull(await _saga.Exists(callId, m => m.AwaitingBroadcast));
        Assert.Equal((Now + TimeSpan.FromSeconds(2), new UnknownCallExpired(callId)), Single<UnknownCallExpired>());
        var waiting = _saga.Sagas.Contains(callId)!;
        Assert.Equal(("sales", (string?)null, 0), (Assert.Single(waiting.PendingClaims).Claim.App, waiting.Winner, waiting.ClaimCount));

        await _harness.Bus.Publish(Broadcast(callId, "sales", "support"));

        Assert.NotNull(await _saga.Exists(callId, m => m.Claimed));
        var decision = await Decision(callId);
        Assert.Equal((CallStatus.Success, "sales", DispositionReason.Claimed, 1), (decision.Status, decision.Winner, decision.Reason, decision.Claims));
        Assert.Empty(_saga.Sagas.Contains(callId)!.PendingClaims);
        Assert.Equal(1, _claims.Count("sales", "accepted"));
    }

    [Fact]
    public async Task A_claim_whose_broadcast_never_comes_is_answered_not_found_and_forgotten()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.AwaitingBroadcast));

        await _harness.Bus.Publish(new UnknownCallExpired(callId));

        Assert.True(await _saga.Consumed.Any<UnknownCallExpired>(m => m.Context.Message.CallId == callId));
        Assert.Null(await _saga.NotExists(callId));
        Assert.Equal(1, _claims.Count(RouterMetrics.UnknownApp, RejectReason.NotFound));
    }

    [Fact]
    public async Task The_unknown_call_timer_of_a_claim_decided_when_its_broadcast_came_is_ignored_by_the_open_call()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(new ClaimCall(callId, "outsider"));
        Assert.NotNull(await _saga.Exists(callId, m => m.AwaitingBroadcast));
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Open)); // the held claim was rejected: no winner, the call stays open

        await _harness.Bus.Publish(new UnknownCallExpired(callId));

        Assert.True(await _saga.Consumed.Any<UnknownCallExpired>(m => m.Context.Message.CallId == callId));
        Assert.Null(Assert.Single(_saga.Consumed.Select<UnknownCallExpired>(m => m.Context.Message.CallId == callId)).Exception);
        Assert.NotNull(await _saga.Exists(callId, m => m.Open));
        Assert.Equal(1, _claims.Count(RouterMetrics.UnknownApp, RejectReason.InvalidRequest));
    }

    [Fact]
    public async Task A_forget_timer_left_from_a_forgotten_call_is_ignored_by_the_call_a_late_claim_starts_again()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Claimed));
        await _harness.Bus.Publish(new ForgetCall(callId));
        Assert.Null(await _saga.NotExists(callId));
        // A claim delivered again after the call was forgotten (a router's node was lost) starts it again, waiting for a broadcast.
        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.AwaitingBroadcast));

        await _harness.Bus.Publish(new ForgetCall(callId)); // the first one again (an in-process timer retried, or the broker's copy)

        var forgets = 0;
        await foreach (var forget in _saga.Consumed.SelectAsync<ForgetCall>(m => m.Context.Message.CallId == callId))
        {
            Assert.Null(forget.Exception);
            if (++forgets == 2)
                break;
        }
        Assert.Equal(2, forgets);
        Assert.NotNull(await _saga.Exists(callId, m => m.AwaitingBroadcast));
    }

    [Fact]
    public async Task A_second_claim_is_rejected_already_claimed_and_the_decision_stands()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales", "support"));
        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Claimed));

        await _harness.Bus.Publish(new ClaimCall(callId, "support"));

        Assert.True(await _saga.Consumed.Any<ClaimCall>(m => m.Context.Message.App == "support" && m.Context.Message.CallId == callId));
        Assert.Equal(1, _claims.Count("support", RejectReason.AlreadyClaimed));
        Assert.Equal(1, _claims.Count("sales", "accepted"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Claimed));
        var call = _saga.Sagas.Contains(callId)!;
        Assert.Equal(("sales", 2), (call.Winner, call.ClaimCount));
        var decision = Assert.Single(_harness.Sent.Select<ContinueCall>(m => m.Context.Message.CallId == callId));
        Assert.Equal("sales", decision.Context.Message.Winner);
    }

    [Fact]
    public async Task A_claim_from_outside_the_audience_leaves_the_call_open()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Open));

        await _harness.Bus.Publish(new ClaimCall(callId, "outsider"));

        Assert.True(await _saga.Consumed.Any<ClaimCall>(m => m.Context.Message.CallId == callId));
        Assert.Equal(1, _claims.Count(RouterMetrics.UnknownApp, RejectReason.InvalidRequest));
        Assert.NotNull(await _saga.Exists(callId, m => m.Open));
        Assert.Null(_saga.Sagas.Contains(callId)!.Winner);
    }

    [Fact]
    public async Task A_caller_hangup_reported_by_the_adapter_ends_an_open_call_without_a_decision()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Open));

        await _harness.Bus.Publish(new CallEnded(callId, "chan-1", CallStatus.Abandoned, DispositionReason.CallerHangup, Now));

        Assert.NotNull(await _saga.Exists(callId, m => m.Ended));
        var call = _saga.Sagas.Contains(callId)!;
        Assert.Equal((CallStatus.Abandoned, DispositionReason.CallerHangup), (call.Status, call.Reason));
        Assert.Empty(_harness.Sent.Select<ContinueCall>(m => m.Context.Message.CallId == callId));
    }

    [Fact]
    public async Task A_hangup_that_overtakes_its_broadcast_still_gets_the_claim_tally_to_the_adapter_when_forgotten()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(new CallEnded(callId, "chan-1", CallStatus.Abandoned, DispositionReason.CallerHangup, Now));
        Assert.NotNull(await _saga.Exists(callId, m => m.Ended));
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        Assert.True(await _harness.Consumed.Any<CallBroadcast>(m => m.Context.Message.CallId == callId));

        await _harness.Bus.Publish(Single<ForgetCall>().Message);

        Assert.Equal(new ClaimTally(callId, "chan-1", 0), Assert.Single(await TalliesSent(callId, 1)));
        Assert.Empty(_harness.Sent.Select<ContinueCall>(m => m.Context.Message.CallId == callId));
    }

    [Fact]
    public async Task The_tally_goes_out_once_every_offered_app_has_claimed_and_again_at_forget_time_only_if_a_claim_came_after()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales", "support"));
        await _harness.Bus.Publish(new ClaimCall(callId, "support"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Claimed));
        // One of two offered apps has claimed: the count may still grow, no tally yet (the tallies sent are listed below).
        Assert.Null(_saga.Sagas.Contains(callId)!.TalliedClaims);

        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));
        Assert.Equal(new ClaimTally(callId, "chan-1", 2), Assert.Single(await TalliesSent(callId, 1)));

        // sales claims again (counted, rejected): the tally at forget time carries the new count. Without that claim it
        // would send nothing (the count did not change).
        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));
        await Infrastructure.Eventually.True(() => _saga.Sagas.Contains(callId)!.ClaimCount == 3, TimeSpan.FromSeconds(5), "the third claim was not counted");
        await _harness.Bus.Publish(Single<ForgetCall>().Message);
        Assert.Null(await _saga.NotExists(callId));
        Assert.Equal([2, 3], (await TalliesSent(callId, 2)).Select(t => t.Claims));
    }

    [Fact]
    public async Task A_call_forgotten_with_its_count_already_tallied_sends_no_second_tally()
    {
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));
        Assert.Equal(new ClaimTally(callId, "chan-1", 1), Assert.Single(await TalliesSent(callId, 1)));

        await _harness.Bus.Publish(Single<ForgetCall>().Message);
        Assert.Null(await _saga.NotExists(callId));
        // Tallies are queued inside the consume that counts them (sent a few milliseconds later): none more was queued.
        Assert.Equal(1, _provider.GetRequiredService<TallyBatcher>().Queued);
        Assert.Single(await TalliesSent(callId, 1));
    }

    [Fact]
    public async Task A_broadcast_delivered_again_while_the_call_waits_sets_its_deadline_again_and_a_won_call_ignores_it()
    {
        // A router that saved the call and died before its deadline timer left: the broadcast, not acked, comes back.
        var callId = Guid.NewGuid();
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Open));
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        await Infrastructure.Eventually.True(() => _timers.Of<BroadcastDeadline>().Length == 2, TimeSpan.FromSeconds(5), "the deadline was not set again");
        var (first, again) = (_timers.Of<BroadcastDeadline>()[0], _timers.Of<BroadcastDeadline>()[1]);
        Assert.Equal((first.Due, new BroadcastDeadline(callId)), (again.Due, again.Message)); // the deadline the call already had

        await _harness.Bus.Publish(new ClaimCall(callId, "sales"));
        Assert.NotNull(await _saga.Exists(callId, m => m.Claimed));
        await _harness.Bus.Publish(Broadcast(callId, "sales"));
        await Infrastructure.Eventually.True(() => _harness.Consumed.Select<CallBroadcast>(m => m.Context.Message.CallId == callId).Count() == 3,
            TimeSpan.FromSeconds(5), "the third broadcast was not consumed");
        Assert.Equal(2, _timers.Of<BroadcastDeadline>().Length); // won: nothing more to time
    }

    [Fact]
    public async Task Tallies_counted_together_leave_in_one_message_per_adapter()
    {
        var batcher = _provider.GetRequiredService<TallyBatcher>();
        var (a, b, c) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        // Queued within microseconds of each other, far inside the 20 ms the first one waits for company.
        batcher.Add("node-1", new ClaimTally(a, "chan-a", 3));
        batcher.Add("node-2", new ClaimTally(b, "chan-b", 1));
        batcher.Add("node-1", new ClaimTally(c, "chan-c", 2));

        await Infrastructure.Eventually.True(() => _harness.Sent.Select<ClaimTallies>(_ => true).Count() >= 2, TimeSpan.FromSeconds(5), "the batches were not sent");
        var batches = _harness.Sent.Select<ClaimTallies>(_ => true).Select(m => (Node: m.Context.RoutingKey(), m.Context.Message.Tallies)).OrderBy(m => m.Node).ToList();
        Assert.Equal(2, batches.Count);
        Assert.Equal("node-1", batches[0].Node);
        Assert.Equal([new ClaimTally(a, "chan-a", 3), new ClaimTally(c, "chan-c", 2)], batches[0].Tallies);
        Assert.Equal("node-2", batches[1].Node);
        Assert.Equal([new ClaimTally(b, "chan-b", 1)], batches[1].Tallies);
    }

    private static CallBroadcast Broadcast(Guid callId, params string[] audience) =>
        new(callId, "chan-1", "PJSIP/alice-00000001", "5551234", "Alice", "1000", "from-test", [], "node-1", "asterisk-1",
            null, false, audience, Now, Now, Now.AddMilliseconds(TimeoutMs), TimeoutMs);

    /// <summary>The tallies for the call in the batches sent so far, once there are at least <paramref name="atLeast"/>.</summary>
    private async Task<List<ClaimTally>> TalliesSent(Guid callId, int atLeast)
    {
        List<ClaimTally> Sent() => [.. _harness.Sent.Select<ClaimTallies>(_ => true).SelectMany(m => m.Context.Message.Tallies).Where(t => t.CallId == callId)];
        await Infrastructure.Eventually.True(() => Sent().Count >= atLeast, TimeSpan.FromSeconds(5), $"fewer than {atLeast} tallies sent for the call");
        return Sent();
    }

    private async Task<ContinueCall> Decision(Guid callId)
    {
        Assert.True(await _harness.Sent.Any<ContinueCall>(m => m.Context.Message.CallId == callId), "no ContinueCall sent");
        return Assert.Single(_harness.Sent.Select<ContinueCall>(m => m.Context.Message.CallId == callId)).Context.Message;
    }

    private (DateTimeOffset Due, T Message) Single<T>() where T : class
    {
        var timer = Assert.Single(_timers.Of<T>());
        return (timer.Due, (T)timer.Message);
    }

    /// <summary>A clock that stands still, so deadlines and decision times are exact.</summary>
    private sealed class StoppedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private sealed record Timer(DateTimeOffset Due, TimeSpan Lane, object Message, Func<bool>? Obsolete);

    /// <summary>Remembers every timer the saga sets; the test fires one by publishing its message.</summary>
    private sealed class RecordingTimers : ICallTimers
    {
        private readonly ConcurrentQueue<Timer> _set = new();

        public Task Schedule<T>(ConsumeContext context, DateTimeOffset due, TimeSpan lane, T message, Func<bool>? obsolete = null) where T : class
        {
            _set.Enqueue(new Timer(due, lane, message, obsolete));
            return Task.CompletedTask;
        }

        public Timer[] Of<T>() => [.. _set.Where(t => t.Message is T)];
    }

    /// <summary>The router's claims counter (app, outcome) from this test's own meter factory only.</summary>
    private sealed class ClaimCounts : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentDictionary<(string App, string Outcome), long> _counts = new();

        public void Listen(IMeterFactory factory)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Scope == factory && instrument.Name == "callrouter.router.claims")
                    listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                string? app = null, outcome = null;
                foreach (var tag in tags)
                    if (tag.Key == "app") app = tag.Value as string;
                    else if (tag.Key == "outcome") outcome = tag.Value as string;
                _counts.AddOrUpdate((app!, outcome!), value, (_, sum) => sum + value);
            });
            _listener.Start();
        }

        public long Count(string app, string outcome) => _counts.GetValueOrDefault((app, outcome));

        public void Dispose() => _listener.Dispose();
    }
}
