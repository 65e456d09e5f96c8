using System.Collections.Concurrent;
using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.Common;
using CallRouter.Messages;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// Gathers each call's CDR from StasisStart to ChannelDestroyed and publishes it as a CallRecord as soon as the
/// channel is gone, so an adapter crash after that loses nothing. For calls the router decided, the claim count comes
/// later (the router's tally): the record is then sent again with it, and the CDR writer fills the count in (the first
/// copy has it null). Waiting for the tally ends after <see cref="AdapterOptions.TallyWait"/>. Records are published
/// persistent with confirms and retried until the broker takes them. Records of calls still up when the adapter
/// stops are lost with it (noted in the README). A draft whose ChannelDestroyed may never come (its subscription failed,
/// or it is older than <see cref="AdapterOptions.DraftCheckAfter"/>) is checked by <see cref="DraftCheck"/>.
/// </summary>
public sealed class CallRecorder : IDisposable
{
    private readonly ConcurrentDictionary<string, Draft> _byChannel = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, Draft> _byCall = new();
    private readonly AdapterBroker _broker;
    private readonly BackgroundWork _work;
    private readonly TimeProvider _clock;
    private readonly AdapterOptions _options;
    private readonly ILogger<CallRecorder> _logger;
    private readonly CancellationToken _stopping;
    private readonly DueQueue<Draft> _tallyWaits;

    public CallRecorder(AdapterBroker broker, BackgroundWork work, TimeProvider clock, IOptions<AdapterOptions> options,
        IHostApplicationLifetime lifetime, ILogger<CallRecorder> logger)
    {
        (_broker, _work, _clock, _options, _logger, _stopping) = (broker, work, clock, options.Value, logger, lifetime.ApplicationStopping);
        _tallyWaits = new DueQueue<Draft>("cdr-tally-waits", TryPublish, clock);
    }

    /// <summary>What is known of one call so far. Guarded by its own lock.</summary>
    private sealed class Draft(Guid callId, AriChannel channel, IReadOnlyList<string> args, DateTimeOffset broadcastAt)
    {
        public Guid CallId { get; } = callId;
        public AriChannel Channel { get; } = channel;
        public IReadOnlyList<string> Args { get; } = args;
        public DateTimeOffset BroadcastAt { get; } = broadcastAt;
        public DateTimeOffset? Deadline;
        public IReadOnlyList<string> Audience = [];
        public bool TallyExpected;
        public int? Claims;
        public string? Status, Reason, Winner, Target;
        public DateTimeOffset? ClaimedAt, HandedOverAt, DecidedAt, EndedAt;
        public int? HangupCause;
        public string? HangupCauseText;
        public bool Published;
        /// <summary>The claim count the last published record carried (null: none yet).</summary>
        public int? PublishedClaims;
        public string? ControlEnding;
        public bool Controlled;
        public DateTimeOffset? AnsweredAt;
        public Guid? ParentCallId;

        /// <summary>When <see cref="DraftCheck"/> should next ask ARI whether the channel still exists.</summary>
        public DateTimeOffset NextCheck;

        /// <summary>Its subscription failed or was shed: after it leaves Stasis, its ChannelDestroyed is not heard.</summary>
        public bool Unwatched;

        /// <summary>From ChannelHangupRequest: the best end data known should ChannelDestroyed be missed.</summary>
        public DateTimeOffset? HangupRequestedAt;
        public int? HangupRequestCause;
    }

    /// <summary>A broadcast went out: the router will decide, then send a tally.</summary>
    public void Offered(AriChannel channel, CallBroadcast broadcast) =>
        Add(new Draft(broadcast.CallId, channel, broadcast.Args, broadcast.BroadcastAt)
        {
            Deadline = broadcast.Deadline, Audience = broadcast.Audience, TallyExpected = true,
        });

    /// <summary>The adapter fails the call itself, without a broadcast (bad options, no live app, leftover channel).</summary>
    public void NotOffered(AriChannel channel, Guid callId, IReadOnlyList<string>? args) =>
        Add(new Draft(callId, channel, args ?? [], _clock.GetUtcNow()));

    /// <summary>The call is about to leave the router's app as <paramref name="decision"/> says.</summary>
    public void Deciding(string channelId, Decision decision)
    {
        if (!_byChannel.TryGetValue(channelId, out var draft))
            return;
        var now = _clock.GetUtcNow();
        lock (draft)
        {
            draft.Status = decision.Status;
            draft.Reason = decision.Reason;
            draft.Controlled |= decision.Reason == DispositionReason.Controlled;
            draft.Winner = decision.Winner;
            draft.ClaimedAt = decision.ClaimedAt;
            draft.Target = decision.MoveToApp is { } app ? $"app:{app}"
                : decision.Target is { } t ? $"{t.Context},{t.Extension},{t.Priority}" : null;
            draft.HandedOverAt = null;
            draft.DecidedAt ??= now;
        }
    }

    /// <summary>Asterisk took the continue or move.</summary>
    public void HandedOver(string channelId)
    {
        if (_byChannel.TryGetValue(channelId, out var draft))
            lock (draft)
                draft.HandedOverAt = _clock.GetUtcNow();
    }

    /// <summary>A channel the controlling app created for <paramref name="parentCallId"/> entered the app: it gets a record of its own.</summary>
    public void Created(AriChannel channel, Guid parentCallId, string app, DateTimeOffset at) =>
        Add(new Draft(Guid.NewGuid(), channel, [], at)
        {
            ParentCallId = parentCallId, Winner = app, Status = CallStatus.Success, Reason = DispositionReason.Created, DecidedAt = at,
        });

    /// <summary>A channel of a controlled call went Up (the first time counts).</summary>
    public void Answered(string channelId, DateTimeOffset at)
    {
        if (_byChannel.TryGetValue(channelId, out var draft))
            lock (draft)
                draft.AnsweredAt ??= at;
    }

    /// <summary>A controlled call's session ended (CallControlEnded.reason).</summary>
    public void ControlEnded(string channelId, string ending)
    {
        if (_byChannel.TryGetValue(channelId, out var draft))
            lock (draft)
                draft.ControlEnding ??= ending;
    }

    /// <summary>The caller hung up before any decision.</summary>
    public void Abandoned(string channelId)
    {
        if (!_byChannel.TryGetValue(channelId, out var draft))
            return;
        lock (draft)
        {
            draft.Status ??= CallStatus.Abandoned;
            draft.Reason ??= DispositionReason.CallerHangup;
            draft.DecidedAt ??= _clock.GetUtcNow();
        }
    }

    /// <summary>
    /// The router's count of every claim the call received. It may come before the channel ends (the record then goes out
    /// once, complete) or after (the record is sent again with it); a later, higher count (a claim that came after an
    /// early tally) sends it again too. Counts only grow: a tally that says no more than is known changes nothing.
    /// </summary>
    public void Tallied(Guid callId, int claims)
    {
        if (!_byCall.TryGetValue(callId, out var draft))
            return;
        CallRecord? update = null;
        lock (draft)
        {
            if (draft.Claims >= claims)
                return;
            draft.Claims = claims;
            if (draft.Published && !(draft.PublishedClaims >= claims))
            {
                draft.PublishedClaims = claims;
                update = ToRecord(draft);
            }
        }
        if (update is null)
        {
            TryPublish(draft);
            return;
        }
        _work.Run(() => Publish(update), "publish call record tally");
    }

    public void Destroyed(string channelId, DateTimeOffset at, int? cause, string? causeText)
    {
        if (!_byChannel.TryGetValue(channelId, out var draft))
            return;
        lock (draft)
        {
            draft.EndedAt ??= at;
            draft.HangupCause ??= cause;
            draft.HangupCauseText ??= causeText;
        }
        TryPublish(draft);
    }

    /// <summary>The channel is hanging up (ChannelHangupRequest): kept in case its ChannelDestroyed is missed.</summary>
    public void HangupRequested(string channelId, DateTimeOffset at, int? cause)
    {
        if (_byChannel.TryGetValue(channelId, out var draft))
            lock (draft)
            {
                draft.HangupRequestedAt ??= at;
                draft.HangupRequestCause ??= cause;
            }
    }

    /// <summary>The channel's subscription failed or was shed: <see cref="DraftCheck"/> looks at it at its next round.</summary>
    public void Unwatched(string channelId)
    {
        if (_byChannel.TryGetValue(channelId, out var draft))
            lock (draft)
            {
                draft.Unwatched = true;
                draft.NextCheck = _clock.GetUtcNow();
            }
    }

    /// <summary>The channel's subscription went through after all (a draft check subscribed it again).</summary>
    public void Watched(string channelId)
    {
        if (_byChannel.TryGetValue(channelId, out var draft))
            lock (draft)
                draft.Unwatched = false;
    }

    /// <summary>
    /// Channels whose draft is due for a check (not ended <see cref="AdapterOptions.DraftCheckAfter"/> after it was made
    /// or last checked, or unwatched), and whether each is unwatched. Each is due again a DraftCheckAfter later.
    /// </summary>
    public IReadOnlyList<(string ChannelId, bool Unwatched)> DueForCheck()
    {
        var now = _clock.GetUtcNow();
        var due = new List<(string, bool)>();
        foreach (var (channelId, draft) in _byChannel)
            lock (draft)
            {
                if (draft.EndedAt is not null || draft.NextCheck > now)
                    continue;
                draft.NextCheck = now + _options.DraftCheckAfter;
                due.Add((channelId, draft.Unwatched));
            }
        return due;
    }

    /// <summary>
    /// The channel no longer exists but its ChannelDestroyed was not heard: the record is finished with the best end data
    /// known (its ChannelHangupRequest, else now) and <paramref name="why"/> as the hang-up cause text.
    /// </summary>
    public void Gone(string channelId, string why)
    {
        if (!_byChannel.TryGetValue(channelId, out var draft))
            return;
        lock (draft)
        {
            draft.EndedAt ??= draft.HangupRequestedAt ?? _clock.GetUtcNow();
            draft.HangupCause ??= draft.HangupRequestCause;
            draft.HangupCauseText ??= why;
        }
        TryPublish(draft);
    }

    /// <summary>Channels created before <paramref name="before"/> whose record waits for ChannelDestroyed.</summary>
    public IReadOnlyList<string> OpenChannels(DateTimeOffset before) =>
        [.. _byChannel.Where(d => d.Value.EndedAt is null && d.Value.Channel.CreatedAt < before).Select(d => d.Key)];

    private void Add(Draft draft)
    {
        if (!_options.RecordCalls)
            return;
        draft.NextCheck = _clock.GetUtcNow() + _options.DraftCheckAfter;
        _byChannel[draft.Channel.Id] = draft;
        _byCall[draft.CallId] = draft;
    }

    /// <summary>
    /// Publishes the record once the channel is gone (and its ending known). A call the router decides stays reachable by
    /// its tally until <see cref="AdapterOptions.TallyWait"/> after the decision: a tally that comes later than the record, or
    /// raises the count it carried, sends the record again.
    /// </summary>
    private void TryPublish(Draft draft)
    {
        CallRecord record;
        bool keepForTally;
        lock (draft)
        {
            if (draft.EndedAt is null)
                return;
            var waitUntil = (draft.DecidedAt ?? draft.EndedAt.Value) + _options.TallyWait;
            var timeIsUp = _clock.GetUtcNow() >= waitUntil;
            if (draft.Published)
            {
                // Called again by the tally wait: stop waiting (a row without a tally keeps claims unknown).
                if (timeIsUp)
                    _byCall.TryRemove(new KeyValuePair<Guid, Draft>(draft.CallId, draft));
                return;
            }
            if (draft.Status is null && !timeIsUp)
            {
                _tallyWaits.Add(waitUntil, draft);
                return;
            }
            draft.Published = true;
            record = ToRecord(draft);
            draft.PublishedClaims = record.Claims;
            keepForTally = draft.TallyExpected && !timeIsUp;
            if (keepForTally)
                _tallyWaits.Add(waitUntil, draft);
        }
        _byChannel.TryRemove(new KeyValuePair<string, Draft>(draft.Channel.Id, draft));
        if (!keepForTally)
            _byCall.TryRemove(new KeyValuePair<Guid, Draft>(draft.CallId, draft));
        _work.Run(() => Publish(record), "publish call record");
    }

    private CallRecord ToRecord(Draft d) => new(
        d.CallId, _options.Node, d.Channel.Id, d.Channel.Name, d.Channel.CallerNumber, d.Channel.CallerName, d.Channel.Exten,
        d.Channel.Context, d.Args, d.Channel.CreatedAt, d.BroadcastAt, d.Deadline, d.Audience, d.TallyExpected ? d.Claims : 0,
        d.Winner, d.ClaimedAt, d.HandedOverAt, d.Status ?? CallStatus.Abandoned, d.Reason ?? DispositionReason.CallerHangup,
        d.Target, d.EndedAt!.Value, d.HangupCause, d.HangupCauseText, d.Controlled, d.AnsweredAt, d.ControlEnding, d.ParentCallId);

    private async Task Publish(CallRecord record)
    {
        var context = ResilienceContextPool.Shared.Get(_stopping);
        context.Properties.Set(RecordCallId, record.CallId);
        try
        {
            await (_publishRetry ??= PublishRetry()).ExecuteAsync(async _ => await _broker.PublishRecord(record), context);
            if (context.Properties.GetValue(RecordRetried, false) && Interlocked.Decrement(ref _recordsRetrying) == 0)
                _logger.LogInformation("Call records are taken by the broker again");
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private static readonly ResiliencePropertyKey<Guid> RecordCallId = new("call-record-id");
    private static readonly ResiliencePropertyKey<bool> RecordRetried = new("call-record-retried");
    private ResiliencePipeline? _publishRetry; // built on first use (two built at once are the same pipeline)

    /// <summary>Records the broker has not taken yet, being offered again.</summary>
    private int _recordsRetrying;

    /// <summary>When (Environment.TickCount64) the last warning about them was logged.</summary>
    private long _retryWarnedAt = long.MinValue / 2;

    // "call-record-publish": a record the broker did not take is offered again, 1 s longer each time up to 5 s, until the
    // adapter stops (the record must not be lost to a broker hiccup). One warning per 5 s says how many wait, not one per
    // record per attempt (hundreds a second during an outage).
    private ResiliencePipeline PublishRetry() => RetryForever.Pipeline("call-record-publish", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5),
        _ => true,
        args =>
        {
            if (args.AttemptNumber == 0)
            {
                args.Context.Properties.Set(RecordRetried, true);
                Interlocked.Increment(ref _recordsRetrying);
            }
            var (now, warnedAt) = (Environment.TickCount64, Interlocked.Read(ref _retryWarnedAt));
            if (now - warnedAt >= 5000 && Interlocked.CompareExchange(ref _retryWarnedAt, now, warnedAt) == warnedAt)
                _logger.LogWarning("{Count} call records not taken by the broker yet, offered again until they are (latest: call {CallId}, attempt {Attempt}: {Error})",
                    Volatile.Read(ref _recordsRetrying), args.Context.Properties.GetValue(RecordCallId, Guid.Empty), args.AttemptNumber + 1, args.Outcome.Exception?.Message);
        });

    public void Dispose() => _tallyWaits.Dispose();
}
