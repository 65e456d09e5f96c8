using System.Collections.Concurrent;
using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.AsteriskAdapter.Observability;
using CallRouter.Common;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// The ways a call leaves the router's app besides the router's word: failed at once, fallen back at the deadline plus
/// the grace, or abandoned by the caller; and what every ending is counted and told as (metrics, CallEnded, CallFailed).
/// </summary>
public sealed class CallEndings : IDisposable
{
    private readonly CallHandover _handover;
    private readonly CallBook _book;
    private readonly CallRecorder _recorder;
    private readonly BrokerOutbox _outbox;
    private readonly BackgroundWork _work;
    private readonly AdapterMetrics _metrics;
    private readonly TimeProvider _clock;
    private readonly AdapterOptions _options;
    private readonly ILogger<CallEndings> _logger;
    private readonly ReleasedChannels _released;
    private readonly DueQueue<OpenCall> _fallbacks;

    /// <summary>Channels being failed at once right now (not in the book): a reconnect must not fail them a second time.</summary>
    private readonly ConcurrentDictionary<string, bool> _failing = new(StringComparer.Ordinal);

    public CallEndings(CallHandover handover, CallBook book, CallRecorder recorder, BrokerOutbox outbox, BackgroundWork work,
        AdapterMetrics metrics, ReleasedChannels released, TimeProvider clock, IOptions<AdapterOptions> options, ILogger<CallEndings> logger)
    {
        (_handover, _book, _recorder, _outbox, _work, _metrics, _released, _clock, _options, _logger) =
            (handover, book, recorder, outbox, work, metrics, released, clock, options.Value, logger);
        _fallbacks = new DueQueue<OpenCall>("adapter-fallbacks", call => _work.Run(() => FallBack(call), "fallback"), clock);
    }

    /// <summary>True while the channel is being failed at once.</summary>
    public bool IsFailing(string channelId) => _failing.ContainsKey(channelId);

    /// <summary>The adapter falls the call back alone if the router has not decided by its deadline plus the grace.</summary>
    public void FallBackUnlessDecided(OpenCall call) => _fallbacks.Add(call.Deadline + _options.FallbackGrace, call);

    /// <summary>Sends the channel back to the dialplan FAILED with <paramref name="reason"/>, without a broadcast (or after one by an earlier run).</summary>
    public void FailAtOnce(AriChannel channel, string reason, string detail, IReadOnlyList<string>? args = null, Guid? knownCallId = null, bool quietly = false)
    {
        // Shed calls are logged once per overload (RouterBacklog), not one line each at hundreds per second.
        if (!quietly)
            _logger.LogInformation("Channel {ChannelId} FAILED at once: {Reason} ({Detail})", channel.Id, reason, detail);
        var callId = knownCallId ?? Guid.NewGuid();
        _recorder.NotOffered(channel, callId, args);
        _failing[channel.Id] = true;
        _work.Run(async () =>
        {
            try
            {
                Ended(null, await _handover.Execute(channel.Id, callId, new Decision(CallStatus.Failed, reason, Args: args, Detail: detail)));
                // A call broadcast by an earlier run: the router may have told an app `accepted`; it tells that app now.
                if (knownCallId is not null)
                    _outbox.Enqueue(OutboundMessage.For(new CallEnded(callId, channel.Id, CallStatus.Failed, reason, _clock.GetUtcNow())));
            }
            finally
            {
                _released.Note(channel.Id);
                _failing.TryRemove(channel.Id, out _);
            }
        }, "fail at once");
    }

    /// <summary>The caller hung up (or the channel went away) before the call was handed over.</summary>
    public void Abandon(OpenCall call, string eventType)
    {
        if (call.Moving && eventType == "StasisEnd")
        {
            _book.Remove(call);
            _metrics.HandedOver(CallStatus.Success, DispositionReason.Claimed, _clock.GetUtcNow() - call.BroadcastAt);
            return;
        }
        _book.Remove(call);
        if (!call.TryFinish())
            return;
        _logger.LogInformation("Call {CallId} ABANDONED ({Event})", call.CallId, eventType);
        _recorder.Abandoned(call.ChannelId);
        _metrics.Ended(CallStatus.Abandoned, DispositionReason.CallerHangup);
        // Queued, not awaited: a broker hiccup must not stall or tear down the ARI event loop.
        _outbox.Enqueue(OutboundMessage.For(new CallEnded(call.CallId, call.ChannelId, CallStatus.Abandoned, DispositionReason.CallerHangup, _clock.GetUtcNow())));
    }

    /// <summary>A winner told `accepted` whose call went back to the dialplan FAILED hears so (CallFailed on its queue).</summary>
    public void TellWinner(OpenCall call, Decision final)
    {
        if (call.Winner is not { } winner || final.Status != CallStatus.Failed)
            return;
        _outbox.Enqueue(OutboundMessage.For(new CallFailed(call.CallId, call.ChannelId, winner, final.Status, final.Reason, final.Detail, _clock.GetUtcNow())));
    }

    /// <summary>Counts how a call left the app (a broadcast call also records its decision latency).</summary>
    public void Ended(OpenCall? call, HandoverResult result)
    {
        var (status, reason) = (result.Final.Status, result.Final.Reason);
        if (status == CallStatus.Failed)
            _metrics.Failed(reason);
        else if (result.HandedOver && call is not null)
            _metrics.HandedOver(status, reason, _clock.GetUtcNow() - call.BroadcastAt);
        else
            _metrics.Ended(status, reason);
    }

    private async Task FallBack(OpenCall call)
    {
        if (!call.TryFinish())
            return;
        _logger.LogWarning("Call {CallId}: no word from the router {Grace} ms after the deadline; falling back", call.CallId, _options.FallbackGrace.TotalMilliseconds);
        // The call stays in the book while it is handed over, so a reconnect meanwhile does not take it for a leftover.
        var result = await _handover.Execute(call.ChannelId, call.CallIdToSet, new Decision(CallStatus.Timeout, DispositionReason.RouterNoAnswer, Args: call.Options.Args));
        _book.Remove(call);
        Ended(call, result);
        _outbox.Enqueue(OutboundMessage.For(new CallEnded(call.CallId, call.ChannelId, CallStatus.Timeout, DispositionReason.RouterNoAnswer, _clock.GetUtcNow())));
    }

    public void Dispose() => _fallbacks.Dispose();
}
