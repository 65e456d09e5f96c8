using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.AsteriskAdapter.Observability;
using CallRouter.Common;
using CallRouter.Messages;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// A channel entered the router's app (StasisStart): it is broadcast to the live apps its filter matches, held while
/// the adapter is still learning which apps are live, or failed at once (bad options or filter, no live app).
/// </summary>
public sealed class StasisStartHandler : IDisposable
{
    private readonly AriClient _ari;
    private readonly AdapterBroker _broker;
    private readonly LiveApps _live;
    private readonly AppFilters _filters;
    private readonly CallBook _book;
    private readonly CallRecorder _recorder;
    private readonly ChannelSubscriber _subscriber;
    private readonly CallEndings _endings;
    private readonly ConnectRecovery _recovery;
    private readonly BackgroundWork _work;
    private readonly AdapterMetrics _metrics;
    private readonly TimeProvider _clock;
    private readonly AdapterOptions _options;
    private readonly ILogger<StasisStartHandler> _logger;
    private readonly RouterBacklog _backlog;
    private readonly CancellationToken _stopping;

    /// <summary>Calls that found no live app while the adapter was still learning which apps are live; offered once it knows.</summary>
    private readonly ConcurrentDictionary<string, bool> _held = new(StringComparer.Ordinal);

    /// <summary>Calls whose ROUTER_CALL_ID goes on the channel <see cref="AdapterOptions.CallIdMarkAfter"/> after their broadcast, unless decided by then.</summary>
    private readonly DueQueue<OpenCall> _marks;

    /// <summary>1 while calls are shed for <see cref="AdapterOptions.MaxOpenCalls"/> (logged once when it starts and once when it stops).</summary>
    private int _shedding;

    public StasisStartHandler(AriClient ari, AdapterBroker broker, LiveApps live, AppFilters filters, CallBook book, CallRecorder recorder,
        ChannelSubscriber subscriber, CallEndings endings, ConnectRecovery recovery, BackgroundWork work, AdapterMetrics metrics,
        TimeProvider clock, IOptions<AdapterOptions> options, IHostApplicationLifetime lifetime, ILogger<StasisStartHandler> logger,
        RouterBacklog backlog)
    {
        _backlog = backlog;
        (_ari, _broker, _live, _filters, _book, _recorder, _subscriber, _endings, _recovery, _work, _metrics, _clock, _options, _logger) =
            (ari, broker, live, filters, book, recorder, subscriber, endings, recovery, work, metrics, clock, options.Value, logger);
        _stopping = lifetime.ApplicationStopping;
        _marks = new DueQueue<OpenCall>("call-id-marks", call =>
        {
            if (!call.IsFinished)
                _work.Run(() => MarkCallId(call), "call id on the channel");
        }, clock);
    }

    public void Dispose() => _marks.Dispose();

    /// <summary>Offers the call that just entered the app (or fails it at once).</summary>
    public async Task Offer(AriChannel channel, IReadOnlyList<string> stasisArgs, string asteriskId)
    {
        // A channel already failed at (re)connect as left behind, whose StasisStart arrived on the new socket.
        if (_recovery.Forget(channel.Id))
            return;
        _subscriber.Subscribe(channel.Id);
        if (_backlog.Overloaded)
        {
            // Admission control: shed before anything is broadcast, the cheapest way out of the app.
            _endings.FailAtOnce(channel, DispositionReason.Overloaded, $"the router's queue held {_backlog.Ready} messages", quietly: true);
            return;
        }
        if (_options.MaxOpenCalls > 0 && _book.Count is var open && open >= _options.MaxOpenCalls)
        {
            if (Interlocked.Exchange(ref _shedding, 1) == 0)
                _logger.LogWarning("{Open} calls wait for a decision (Adapter__MaxOpenCalls is {Limit}): new calls go back to the dialplan at once as FAILED/overloaded",
                    open, _options.MaxOpenCalls);
            _endings.FailAtOnce(channel, DispositionReason.Overloaded, $"{open} calls waited for a decision on this adapter", quietly: true);
            return;
        }
        if (Volatile.Read(ref _shedding) == 1 && Interlocked.Exchange(ref _shedding, 0) == 1)
            _logger.LogWarning("Fewer than {Limit} calls wait for a decision: calls are offered again", _options.MaxOpenCalls);

        var (options, optionsError) = BroadcastOptions.Parse(stasisArgs, _options.DefaultTimeoutMs);
        if (options is null)
        {
            _endings.FailAtOnce(channel, DispositionReason.InvalidOptions, optionsError!);
            return;
        }
        var (filter, filterError) = options.Filter is null ? (null, null) : _filters.Compile(options.Filter);
        if (filterError is not null)
        {
            _endings.FailAtOnce(channel, DispositionReason.InvalidFilter, filterError, options.Args);
            return;
        }
        var audience = _live.Matching(filter);
        if (audience.Count == 0 && !_live.Knows)
        {
            // Just (re)connected to RabbitMQ: an app may be live but not heard yet. Wait for it, at most one liveness window.
            _held[channel.Id] = true;
            _work.Run(async () =>
            {
                await _live.WaitForMatch(filter, _stopping);
                if (_held.TryRemove(channel.Id, out _))
                    await Broadcast(channel, options, filter, asteriskId);
            }, "call held until live apps are known");
            return;
        }
        await Broadcast(channel, options, filter, asteriskId, audience);
    }

    /// <summary>The channel hung up: if it was held (never broadcast), it ends here and gets its CDR.</summary>
    public void HungUp(AriChannel channel)
    {
        if (!_held.TryRemove(channel.Id, out _))
            return;
        _recorder.NotOffered(channel, Guid.NewGuid(), null);
        _recorder.Abandoned(channel.Id);
        _metrics.Ended(CallStatus.Abandoned, DispositionReason.CallerHangup);
    }

    private async Task Broadcast(AriChannel channel, BroadcastOptions options, Regex? filter, string asteriskId, List<string>? audience = null)
    {
        audience ??= _live.Matching(filter);
        if (audience.Count == 0)
        {
            _endings.FailAtOnce(channel, DispositionReason.NoLiveApp,
                options.Filter is null ? "no app is live" : $"no live app matches '{options.Filter}'", options.Args);
            return;
        }

        var now = _clock.GetUtcNow();
        var call = new OpenCall(Guid.NewGuid(), channel.Id, options, now, now.AddMilliseconds(options.TimeoutMs));
        _book.Add(call);
        var broadcast = new CallBroadcast(call.CallId, channel.Id, channel.Name, channel.CallerNumber, channel.CallerName,
            channel.Exten, channel.Context, options.Args, _options.Node, asteriskId, options.Filter, options.NotifyClaimed,
            audience, channel.CreatedAt, now, call.Deadline, options.TimeoutMs);
        _recorder.Offered(channel, broadcast);
        // The call id on the channel (off the call path) once the call has waited CallIdMarkAfter: an adapter restarted
        // while the call waits finds it there and fails the call under the id its broadcast, its claims and its CDR carry.
        // A call decided sooner gets it from its handover (most calls: one ARI request and one ChannelVarset fewer).
        if (_options.CallIdMarkAfter <= TimeSpan.Zero)
            _work.Run(() => MarkCallId(call), "call id on the channel");
        else
            _marks.Add(now + _options.CallIdMarkAfter, call);
        try
        {
            await _broker.PublishBroadcast(broadcast, audience);
            _metrics.Broadcast();
        }
        catch (Exception exception)
        {
            _logger.LogError(exception, "Broadcast for channel {ChannelId} could not be published; the fallback will end it", channel.Id);
        }
        _endings.FallBackUnlessDecided(call);
    }

    private async Task MarkCallId(OpenCall call)
    {
        var (channelId, callId) = (call.ChannelId, call.CallId);
        // Decided before the background lane got to it: the handover has set it.
        if (call.IsFinished)
            return;
        try
        {
            if (await _ari.SetVariable(channelId, CallHandover.CallIdVariable, callId.ToString(), _stopping, AriLane.Background) == AriOutcome.Done)
                call.CallIdMarked = true;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !_stopping.IsCancellationRequested)
        {
            // Failed or shed: only a restart would miss it (the call would then get a new id); the handover sets it again.
            _logger.LogDebug("Could not set {Variable} on channel {ChannelId} early: {Error}", CallHandover.CallIdVariable, channelId, exception.Message);
        }
    }
}
