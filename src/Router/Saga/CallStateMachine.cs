using CallRouter.Messages;
using CallRouter.Router.Observability;
using CallRouter.Router.Timers;
using CallRouter.Router.Transport;
using MassTransit;
using Microsoft.Extensions.Options;

namespace CallRouter.Router.Saga;

/// <summary>
/// One instance per broadcast call. Claims for one call are applied one after another (the repository's
/// concurrency control), so the first valid claim wins and every other claim gets a clear rejection.
/// </summary>
public sealed class CallStateMachine : MassTransitStateMachine<CallState>
{
    private readonly ICallTimers _timers;
    private readonly TimeProvider _clock;
    private readonly RouterOptions _options;
    private readonly RouterMetrics _metrics;
    private readonly AdapterClocks _adapterClocks;
    private readonly TallyBatcher _tallies;

    /// <summary>Claims arrived before the broadcast.</summary>
    public State AwaitingBroadcast { get; private set; } = null!;

    /// <summary>Broadcast sent, no winner yet.</summary>
    public State Open { get; private set; } = null!;

    /// <summary>Claims are being gathered for the claim window.</summary>
    public State Contended { get; private set; } = null!;

    /// <summary>An app won; the call was handed to it.</summary>
    public State Claimed { get; private set; } = null!;

    /// <summary>Ended without a winner: TIMEOUT, ABANDONED or FAILED.</summary>
    public State Ended { get; private set; } = null!;

    public Event<CallBroadcast> BroadcastReceived { get; private set; } = null!;
    public Event<ClaimCall> ClaimReceived { get; private set; } = null!;
    public Event<CallEnded> EndReported { get; private set; } = null!;
    public Event<BroadcastDeadline> DeadlineReached { get; private set; } = null!;
    public Event<UnknownCallExpired> UnknownCallExpired { get; private set; } = null!;
    public Event<ForgetCall> ForgetRequested { get; private set; } = null!;
    public Event<ClaimWindowClosed> WindowClosed { get; private set; } = null!;

    public CallStateMachine(ICallTimers timers, TimeProvider clock, IOptions<RouterOptions> options, RouterMetrics metrics, AdapterClocks adapterClocks,
        TallyBatcher tallies)
    {
        _tallies = tallies;
        _adapterClocks = adapterClocks;
        _timers = timers;
        _metrics = metrics;
        _clock = clock;
        _options = options.Value;

        InstanceState(x => x.CurrentState);

        Event(() => BroadcastReceived, x => x.CorrelateById(m => m.Message.CallId));
        Event(() => ClaimReceived, x => x.CorrelateById(m => m.Message.CallId));
        Event(() => EndReported, x => x.CorrelateById(m => m.Message.CallId));
        Event(() => DeadlineReached, x => { x.CorrelateById(m => m.Message.CallId); x.OnMissingInstance(m => m.Discard()); });
        Event(() => UnknownCallExpired, x => { x.CorrelateById(m => m.Message.CallId); x.OnMissingInstance(m => m.Discard()); });
        Event(() => ForgetRequested, x => { x.CorrelateById(m => m.Message.CallId); x.OnMissingInstance(m => m.Discard()); });
        Event(() => WindowClosed, x => { x.CorrelateById(m => m.Message.CallId); x.OnMissingInstance(m => m.Discard()); });

        Initially(
            When(BroadcastReceived)
                .ThenAsync(Offer)
                .TransitionTo(Open),
            When(ClaimReceived)
                .ThenAsync(context =>
                {
                    Hold(context);
                    return Schedule(context, _options.UnknownCallGrace, new UnknownCallExpired(context.Saga.CorrelationId));
                })
                .TransitionTo(AwaitingBroadcast),
            When(EndReported)
                .ThenAsync(context => End(context, context.Saga, context.Message.Status, context.Message.Reason))
                .TransitionTo(Ended));

        During(AwaitingBroadcast,
            When(ClaimReceived)
                .Then(Hold),
            When(BroadcastReceived)
                .ThenAsync(Offer)
                .ThenAsync(DecidePending)
                .IfElse(context => context.Saga.Winner is not null,
                    won => won.TransitionTo(Claimed),
                    open => open.TransitionTo(Open)),
            When(EndReported)
                .ThenAsync(context => End(context, context.Saga, context.Message.Status, context.Message.Reason))
                .ThenAsync(DecidePending)
                .TransitionTo(Ended),
            When(UnknownCallExpired)
                .ThenAsync(RejectPendingAsUnknown)
                .Finalize());

        During(Open,
            When(ClaimReceived, _ => _options.ClaimWindow <= TimeSpan.Zero)
                .ThenAsync(context => Decide(context, context.Message, Outbound.ReplyRouteOf(context), _clock.GetUtcNow()))
                .If(context => context.Saga.Winner is not null, won => won.TransitionTo(Claimed)),
            When(ClaimReceived, _ => _options.ClaimWindow > TimeSpan.Zero)
                .ThenAsync(context =>
                {
                    Hold(context);
                    return Schedule(context, _options.ClaimWindow, new ClaimWindowClosed(context.Saga.CorrelationId));
                })
                .TransitionTo(Contended),
            When(DeadlineReached)
                .ThenAsync(context => End(context, context.Saga, CallStatus.Timeout, DispositionReason.NoClaim))
                .ThenAsync(context => Outbound.Continue(Out(context), context.Saga.Node!, Decision(context.Saga), _metrics, context.Saga.Audience))
                .TransitionTo(Ended),
            When(EndReported)
                .ThenAsync(context => End(context, context.Saga, context.Message.Status, context.Message.Reason))
                .TransitionTo(Ended));

        // The broadcast again while the call waits: a router saved the call and died before its deadline timer left (the
        // outbox sends after the save), so the broadcast, not acked, came back. The deadline is set again; if the first
        // one did leave, the second finds the call ended and is ignored. Without this the call waited for the adapter's
        // own fallback (TIMEOUT/router-no-answer, the grace later).
        During(Open, Contended,
            When(BroadcastReceived)
                .ThenAsync(ScheduleDeadline));

        During(Contended,
            When(ClaimReceived)
                .Then(Hold),
            When(WindowClosed)
                .ThenAsync(DecidePending)
                .IfElse(context => context.Saga.Winner is not null,
                    won => won.TransitionTo(Claimed),
                    open => open.TransitionTo(Open)),
            When(DeadlineReached)
                .ThenAsync(DecidePending)
                .IfElse(context => context.Saga.Winner is not null,
                    won => won.TransitionTo(Claimed),
                    none => none
                        .ThenAsync(context => End(context, context.Saga, CallStatus.Timeout, DispositionReason.NoClaim))
                        .ThenAsync(context => Outbound.Continue(Out(context), context.Saga.Node!, Decision(context.Saga), _metrics, context.Saga.Audience))
                        .TransitionTo(Ended)),
            When(EndReported)
                .ThenAsync(context => End(context, context.Saga, context.Message.Status, context.Message.Reason))
                .ThenAsync(DecidePending)
                .TransitionTo(Ended));

        During(Open, Claimed, Ended,
            Ignore(WindowClosed));

        // Timers of what the call no longer is: the unknown-call timer of claims its broadcast decided, and the forget timer
        // of an earlier life of the call (forgotten, then started again by a claim delivered again after a node was lost).
        // Not accepted, they would fail and be tried again every second until the call ends.
        During(Open, Contended,
            Ignore(UnknownCallExpired));
        During(AwaitingBroadcast, Open, Contended,
            Ignore(ForgetRequested));

        // A claimed call's deadline needs nothing: its decision leaves before its winning claim is acked (the in-memory
        // outbox sends first), so a router that dies before the ContinueCall left has not acked that claim, and the claim,
        // delivered again, gets the same decision sent again (Decide: the winner's claim again). A send the broker did not
        // take because its node went away is sent again by UnconfirmedResender; past all that the adapter falls back at
        // the deadline and its grace (router-no-answer), and the winner hears CallFailed (below).
        During(Claimed, Ended,
            Ignore(DeadlineReached));
        During(Ended,
            Ignore(EndReported));

        // The adapter sent a decided call back to the dialplan without it: it restarted before handing it over (FAILED),
        // or the decision never reached it in time (router-no-answer). The app told `accepted` hears the call is not
        // coming (CallFailed on its queue, as the adapter tells it of a failed move).
        During(Claimed,
            When(EndReported)
                .If(context => context.Message.Status == CallStatus.Failed || context.Message.Reason == DispositionReason.RouterNoAnswer,
                    lost => lost.ThenAsync(TellWinnerFailed).TransitionTo(Ended)));

        During(Claimed, Ended,
            When(ClaimReceived)
                .ThenAsync(context => Decide(context, context.Message, Outbound.ReplyRouteOf(context), _clock.GetUtcNow())),
            When(ForgetRequested)
                .Then(SendTally)
                .Finalize(),
            Ignore(UnknownCallExpired));
        During(Claimed,
            Ignore(BroadcastReceived));
        // The call's end overtook its broadcast (they travel on different channels): nothing is offered any more, but the
        // broadcast says which adapter holds the call, which the tally needs when the call is forgotten.
        During(Ended,
            When(BroadcastReceived)
                .Then(context => Remember(context.Saga, context.Message)));

        SetCompletedWhenFinalized();
    }

    private static void Remember(CallState call, CallBroadcast broadcast)
    {
        call.ChannelId = broadcast.ChannelId;
        call.Node = broadcast.Node;
        call.Audience = [.. broadcast.Audience];
        call.NotifyClaimed = broadcast.NotifyClaimed;
        call.BroadcastAt = broadcast.BroadcastAt;
    }

    private Task Offer(BehaviorContext<CallState, CallBroadcast> context)
    {
        var (call, broadcast) = (context.Saga, context.Message);
        Remember(call, broadcast);
        // The deadline on this router's clock, never the adapter's stamp as it is: the adapter falls back timeoutMs +
        // grace after it broadcast, on its own clock, so a claim accepted before this deadline reaches it in time
        // whatever the two clocks say (as long as the decision travels in less than the grace).
        var receivedAt = _clock.GetUtcNow() - context.ReceiveContext.ElapsedTime;
        call.Deadline = _adapterClocks.DeadlineOf(broadcast, receivedAt);
        return ScheduleDeadline(context);
    }

    private Task ScheduleDeadline(BehaviorContext<CallState, CallBroadcast> context)
    {
        var call = context.Saga;
        // A won call's deadline does nothing (see During(Claimed)): in-process timers skip it, broker timers cannot and
        // it is ignored when it comes back.
        return _timers.Schedule(context, call.Deadline!.Value, TimeSpan.FromMilliseconds(context.Message.TimeoutMs), new BroadcastDeadline(call.CorrelationId),
            obsolete: () => call.Winner is not null);
    }

    /// <summary>
    /// The adapter holds the call's CDR until it hears how many claims the call got in all. Sent when the call is forgotten,
    /// unless an earlier tally (<see cref="TallyOnceAllClaimed"/>) already gave that count.
    /// </summary>
    private void SendTally(BehaviorContext<CallState, ForgetCall> context)
    {
        if (context.Saga is { Node: { } node, ChannelId: { } channel } call && call.TalliedClaims != call.ClaimCount)
            Tally(node, channel, call);
    }

    /// <summary>
    /// A decided call every offered app has claimed: its tally goes out now rather than when the call is forgotten, so the
    /// CDR is complete when the channel ends (one record instead of two for a short call). A claim counted later still
    /// changes the count, which the tally at forget time then sends again.
    /// </summary>
    private void TallyOnceAllClaimed(CallState call)
    {
        if (call is { Winner: not null, TalliedClaims: null, Node: { } node, ChannelId: { } channel, Audience.Count: > 0 } && call.Audience.All(call.Claimants.Contains))
            Tally(node, channel, call);
    }

    /// <summary>
    /// Queued for the next batch (<see cref="TallyBatcher"/>), not sent by this consume: if the consume fails after this, the
    /// count is sent anyway, and its retry sends it again. Harmless: counts only grow, and the adapter and the CDR writer keep the highest.
    /// </summary>
    private void Tally(string node, string channel, CallState call)
    {
        call.TalliedClaims = call.ClaimCount;
        _tallies.Add(node, new ClaimTally(call.CorrelationId, channel, call.ClaimCount));
    }

    private Task TellWinnerFailed(BehaviorContext<CallState, CallEnded> context)
    {
        var (call, ended) = (context.Saga, context.Message);
        call.Status = ended.Status;
        call.Reason = ended.Reason;
        var detail = ended.Reason == DispositionReason.RouterNoAnswer
            ? "the decision did not reach the adapter by the deadline and its grace; the call went back to the dialplan"
            : "the adapter restarted before it handed the call over; the call went back to the dialplan";
        return Outbound.WinnerFailed(Out(context), new CallFailed(call.CorrelationId, ended.ChannelId, call.Winner!, ended.Status, ended.Reason, detail, ended.EndedAt));
    }

    private Task Schedule<T>(ConsumeContext context, TimeSpan delay, T message) where T : class =>
        _timers.Schedule(context, _clock.GetUtcNow() + delay, delay, message);

    private void Hold(BehaviorContext<CallState, ClaimCall> context) =>
        context.Saga.PendingClaims.Add(new PendingClaim(context.Message, Outbound.ReplyRouteOf(context), _clock.GetUtcNow()));

    private Task End(ConsumeContext context, CallState call, string status, string reason)
    {
        call.Status = status;
        call.Reason = reason;
        return Schedule(context, _options.FinishedRetention, new ForgetCall(call.CorrelationId));
    }

    private async Task DecidePending<T>(BehaviorContext<CallState, T> context) where T : class
    {
        var pending = context.Saga.PendingClaims.ToArray();
        context.Saga.PendingClaims.Clear();
        if (_options.ClaimWindow > TimeSpan.Zero)
            Random.Shared.Shuffle(pending); // claims gathered together are equals: draw the winner
        foreach (var held in pending)
            await Decide(context, Out(context), context.Saga, held.Claim, held.Reply, held.ReceivedAt);
    }

    private async Task Decide(ConsumeContext context, ISendEndpointProvider sends, CallState call, ClaimCall claim, ReplyRoute reply, DateTimeOffset receivedAt)
    {
        var verdict = ClaimRules.Judge(call, claim, receivedAt);
        if (verdict.Accepted && call.Winner is not null)
        {
            // The winner's claim again (redelivered after a router died, or sent twice): same answer, decision resent.
            await Outbound.Continue(sends, call.Node!, Decision(call, call.WinningClaim), null, call.Audience);
            await Outbound.Reply(sends, reply, verdict, _metrics, offered: true);
            return;
        }
        call.ClaimCount++;
        if (!call.Claimants.Contains(claim.App))
            call.Claimants.Add(claim.App);
        if (verdict.Accepted)
        {
            call.Winner = claim.App;
            call.WinningClaim = claim;
            call.ClaimedAt = receivedAt;
            await End(context, call, CallStatus.Success, claim.Control ? DispositionReason.Controlled : DispositionReason.Claimed);
            await Outbound.Continue(sends, call.Node!, Decision(call, claim), _metrics, call.Audience);
            if (call.NotifyClaimed)
                await Outbound.NotifyClaimed(sends, call.Audience, new CallClaimed(call.CorrelationId, call.ChannelId!, claim.App, receivedAt), call.Deadline);
        }
        await Outbound.Reply(sends, reply, verdict, _metrics, call.Audience.Contains(claim.App));
        TallyOnceAllClaimed(call);
    }

    private Task Decide(BehaviorContext<CallState, ClaimCall> context, ClaimCall claim, ReplyRoute reply, DateTimeOffset receivedAt) =>
        Decide(context, context, context.Saga, claim, reply, receivedAt);

    private async Task RejectPendingAsUnknown(BehaviorContext<CallState, UnknownCallExpired> context)
    {
        foreach (var held in context.Saga.PendingClaims)
            await Outbound.Reply(Out(context), held.Reply, ClaimReply.Reject(held.Claim.CallId, held.Claim.App, RejectReason.NotFound, "no broadcast with this call id"), _metrics, offered: false);
        context.Saga.PendingClaims.Clear();
    }

    /// <summary>
    /// Where a handler sends: through its consume context (and so its outbox), except for the message of a timer that fired
    /// in process, which the mediator delivers and whose sends go to the broker another way (<see cref="ICallTimers.SendsFor"/>).
    /// </summary>
    private ISendEndpointProvider Out<T>(BehaviorContext<CallState, T> context) where T : class =>
        context.Message is ICallTimer ? _timers.SendsFor(context) : context;

    private ContinueCall Decision(CallState call, ClaimCall? claim = null) =>
        new(call.CorrelationId, call.ChannelId!, call.Status!, call.Winner, call.Reason,
            claim?.Target, claim?.MoveToApp, claim?.AppArgs, _clock.GetUtcNow(), call.ClaimedAt, call.ClaimCount, claim?.Control ?? false,
            claim?.AllEvents ?? false);
}
