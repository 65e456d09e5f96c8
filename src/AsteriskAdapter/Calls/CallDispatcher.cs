using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.RegularExpressions;
using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.AsteriskAdapter.Control;
using CallRouter.AsteriskAdapter.Observability;
using CallRouter.Common;
using CallRouter.Messages;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// Turns ARI events into broadcasts and router commands into ARI actions, and makes sure every channel that enters
/// the router's app leaves it: by the router's decision, by its own fallback at the deadline plus a grace, or at
/// (re)connect for channels an earlier run left behind.
/// </summary>
public sealed class CallDispatcher : BackgroundService
{
    private readonly AriEventStream _events;
    private readonly AriClient _ari;
    private readonly AdapterBroker _broker;
    private readonly CallHandover _handover;
    private readonly LiveApps _live;
    private readonly HeartbeatReader _heartbeats;
    private readonly AppFilters _filters;
    private readonly CallBook _book;
    private readonly CallRecorder _recorder;
    private readonly BackgroundWork _work;
    private readonly AdapterMetrics _metrics;
    private readonly TimeProvider _clock;
    private readonly AdapterOptions _options;
    private readonly ILogger<CallDispatcher> _logger;
    private readonly DueQueue<OpenCall> _fallbacks;
    private readonly BrokerOutbox _outbox;
    private readonly CallControl _control;
    private readonly ControlCommandHandler _controlCommands;

    /// <summary>
    /// Channels failed at (re)connect as left behind, whose StasisStart may still arrive on the new socket: kept only
    /// until then, their StasisEnd, or the next reconnect (which replaces the set), so it never grows.
    /// </summary>
    private ConcurrentDictionary<string, bool> _recovered = new(StringComparer.Ordinal);

    /// <summary>Calls that found no live app while the adapter was still learning which apps are live; offered once it knows.</summary>
    private readonly ConcurrentDictionary<string, bool> _held = new(StringComparer.Ordinal);

    private CancellationToken _stopping;

    /// <summary>Entries in the recovered-channel set (for tests: it must not grow).</summary>
    internal int RecoveredCount => _recovered.Count;

    /// <summary>Channels being failed at once right now (not in the book): a reconnect must not fail them a second time.</summary>
    private readonly ConcurrentDictionary<string, bool> _failing = new(StringComparer.Ordinal);

    public CallDispatcher(AriEventStream events, AriClient ari, AdapterBroker broker, BrokerOutbox outbox, CallHandover handover, LiveApps live,
        HeartbeatReader heartbeats, AppFilters filters, CallBook book, CallRecorder recorder, BackgroundWork work, AdapterMetrics metrics,
        TimeProvider clock, IOptions<AdapterOptions> options, ILogger<CallDispatcher> logger, CallControl control, ControlCommandHandler controlCommands)
    {
        (_control, _controlCommands) = (control, controlCommands);
        (_events, _ari, _broker, _outbox, _handover, _live, _heartbeats, _filters, _book, _recorder, _work, _metrics, _clock, _options, _logger) =
            (events, ari, broker, outbox, handover, live, heartbeats, filters, book, recorder, work, metrics, clock, options.Value, logger);
        _fallbacks = new DueQueue<OpenCall>("adapter-fallbacks", call => _work.Run(() => FallBack(call), "fallback"), clock);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        if (_options.Node == AdapterOptions.DefaultNode && _options.AriUrl != new Uri(AdapterOptions.DefaultAriUrl))
            _logger.LogWarning("Adapter__Node is the default '{Node}' with a configured ARI address ({Host}): with several Asterisks, give each adapter its own node id, or they share one command queue and take each other's decisions",
                _options.Node, _options.AriUrl.Host);
        await _broker.Start(OnCommand, OnHeartbeat, _live.StartLearning, stoppingToken);
        _live.StartLearning();
        var outbox = _outbox.Run(stoppingToken);
        await _controlCommands.Start(stoppingToken);
        var liveness = _control.WatchLiveness(stoppingToken);
        await _events.Run(Recover, OnEvent, stoppingToken);
        await liveness;
        await _control.StopAll();
        await _work.Drain();
        await outbox;
    }

    public override void Dispose()
    {
        _fallbacks.Dispose();
        base.Dispose();
    }

    private async Task OnEvent(AriEvent e)
    {
        if (await _control.OnEvent(e))
        {
            if (e.Type == "ChannelDestroyed" && e.Channel is { } gone)
                _recorder.Destroyed(gone.Id, e.Timestamp, e.Cause, e.CauseText);
            return;
        }
        if (e.Channel is not { } channel)
            return;
        switch (e.Type)
        {
            case "StasisStart":
                await Offer(channel, e.Args, e.AsteriskId ?? "");
                break;
            case "ChannelHangupRequest" or "StasisEnd" or "ChannelDestroyed":
                if (e.Type != "ChannelHangupRequest")
                    _recovered.TryRemove(channel.Id, out _);
                else
                    _recorder.HangupRequested(channel.Id, e.Timestamp, e.Cause);
                if (_held.TryRemove(channel.Id, out _))
                {
                    // Hung up while held: never broadcast, so it ends here (and gets its CDR).
                    _recorder.NotOffered(channel, Guid.NewGuid(), null);
                    _recorder.Abandoned(channel.Id);
                    _metrics.Ended(CallStatus.Abandoned, DispositionReason.CallerHangup);
                }
                if (_book.TryGetByChannel(channel.Id, out var call))
                    Abandon(call, e.Type);
                if (e.Type == "ChannelDestroyed")
                    _recorder.Destroyed(channel.Id, e.Timestamp, e.Cause, e.CauseText);
                break;
            case "ApplicationMoveFailed":
                if (_book.TryGetByChannel(channel.Id, out var moving) && moving.Moving)
                {
                    moving.Moving = false;
                    _book.Remove(moving);
                    // The winner stays in the CDR and in ROUTER_WINNER: it was told `accepted`.
                    var decision = new Decision(CallStatus.Failed, DispositionReason.MoveFailed, moving.Winner, moving.Options.Args,
                        $"app '{e.Destination}' is not connected");
                    _work.Run(async () =>
                    {
                        var result = await _handover.Execute(channel.Id, moving.CallId, decision);
                        Ended(moving, result);
                        TellWinner(moving, result.Final);
                    }, "move fallback");
                }
                break;
        }
    }

    private async Task Offer(AriChannel channel, IReadOnlyList<string> stasisArgs, string asteriskId)
    {
        if (_recovered.TryRemove(channel.Id, out _))
            return;
        if (_options.RecordCalls)
            _work.Run(() => Subscribe(channel.Id), "channel subscription");

        var (options, optionsError) = BroadcastOptions.Parse(stasisArgs, _options.DefaultTimeoutMs);
        if (options is null)
        {
            FailAtOnce(channel, DispositionReason.InvalidOptions, optionsError!);
            return;
        }
        var (filter, filterError) = options.Filter is null ? (null, null) : _filters.Compile(options.Filter);
        if (filterError is not null)
        {
            FailAtOnce(channel, DispositionReason.InvalidFilter, filterError, options.Args);
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

    private async Task Broadcast(AriChannel channel, BroadcastOptions options, Regex? filter, string asteriskId, List<string>? audience = null)
    {
        audience ??= _live.Matching(filter);
        if (audience.Count == 0)
        {
            FailAtOnce(channel, DispositionReason.NoLiveApp,
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
        // The call id on the channel at once (off the call path): an adapter restarted while the call waits finds it
        // there and fails the call under the id its broadcast, its claims and its CDR carry.
        _work.Run(() => MarkCallId(channel.Id, call.CallId), "call id on the channel");
        try
        {
            await _broker.PublishBroadcast(broadcast, audience);
            _metrics.Broadcast();
        }
        catch (Exception exception)
        {
            _logger.LogError(exception, "Broadcast for channel {ChannelId} could not be published; the fallback will end it", channel.Id);
        }
        _fallbacks.Add(call.Deadline + _options.FallbackGrace, call);
    }

    private async Task MarkCallId(string channelId, Guid callId)
    {
        try
        {
            await _ari.SetVariable(channelId, CallHandover.CallIdVariable, callId.ToString(), _stopping, AriLane.Background);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !_stopping.IsCancellationRequested)
        {
            // Failed or shed: only a restart would miss it (the call would then get a new id); the handover sets it again.
            _logger.LogDebug("Could not set {Variable} on channel {ChannelId} early: {Error}", CallHandover.CallIdVariable, channelId, exception.Message);
        }
    }

    private void FailAtOnce(AriChannel channel, string reason, string detail, IReadOnlyList<string>? args = null, Guid? knownCallId = null)
    {
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
                _failing.TryRemove(channel.Id, out _);
            }
        }, "fail at once");
    }

    /// <summary>
    /// Hear the channel's ChannelDestroyed even after it leaves Stasis, for its CDR. A subscription that fails or is shed
    /// loses no CDR: the draft is marked unwatched, and <see cref="DraftCheck"/> subscribes it again or finishes it once gone.
    /// </summary>
    private async Task Subscribe(string channelId)
    {
        try
        {
            if (await _ari.Subscribe(_options.App, channelId) == AriOutcome.ChannelGone)
                _recorder.Destroyed(channelId, _clock.GetUtcNow(), null, null);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !_stopping.IsCancellationRequested)
        {
            _logger.LogWarning("Channel {ChannelId}: subscription for its CDR failed ({Error}); the draft check will look after it", channelId, exception.Message);
            _recorder.Unwatched(channelId);
        }
    }

    private void Abandon(OpenCall call, string eventType)
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

    private async Task FallBack(OpenCall call)
    {
        if (!call.TryFinish())
            return;
        _logger.LogWarning("Call {CallId}: no word from the router {Grace} ms after the deadline; falling back", call.CallId, _options.FallbackGrace.TotalMilliseconds);
        // The call stays in the book while it is handed over, so a reconnect meanwhile does not take it for a leftover.
        var result = await _handover.Execute(call.ChannelId, call.CallId, new Decision(CallStatus.Timeout, DispositionReason.RouterNoAnswer, Args: call.Options.Args));
        _book.Remove(call);
        Ended(call, result);
        _outbox.Enqueue(OutboundMessage.For(new CallEnded(call.CallId, call.ChannelId, CallStatus.Timeout, DispositionReason.RouterNoAnswer, _clock.GetUtcNow())));
    }

    private async Task OnCommand(BasicDeliverEventArgs delivery)
    {
        // JSON is UTF-8 (RFC 8259); the reader would skip a bad byte inside a field it ignores, so check the whole body.
        if (!System.Text.Unicode.Utf8.IsValid(delivery.Body.Span))
        {
            await _broker.Park(delivery, _broker.CommandErrorQueue, "not a command: the body is not UTF-8");
            return;
        }
        if (delivery.BasicProperties.Type == Topology.Types.ClaimTally)
        {
            await OnTally(delivery);
            return;
        }
        ContinueCall? command;
        try
        {
            command = JsonSerializer.Deserialize<ContinueCall>(delivery.Body.Span, Wire.Json);
        }
        catch (JsonException exception)
        {
            await _broker.Park(delivery, _broker.CommandErrorQueue, $"not a ContinueCall: {exception.Message}");
            return;
        }
        if (command is null || command.CallId == Guid.Empty || string.IsNullOrEmpty(command.Status) || string.IsNullOrEmpty(command.ChannelId))
        {
            await _broker.Park(delivery, _broker.CommandErrorQueue, "ContinueCall needs callId, channelId and status");
            return;
        }

        if (command.Control && command.Status == CallStatus.Success && command.Winner is not null
            && _book.TryGet(command.CallId, out var controlled) && controlled.TryFinish())
        {
            _book.Remove(controlled);
            try
            {
                await _control.Take(controlled, command);
            }
            catch (Exception exception)
            {
                _logger.LogError(exception, "Handing call {CallId} to its controller failed", controlled.CallId);
            }
            await _broker.Ack(delivery);
            return;
        }
        if (_book.TryGet(command.CallId, out var call) && call.TryFinish())
        {
            var decision = new Decision(command.Status, command.Reason ?? "", command.Winner, call.Options.Args,
                Target: command.Target, MoveToApp: command.MoveToApp, AppArgs: command.AppArgs, ClaimedAt: command.ClaimedAt);
            call.Winner = command.Winner;
            call.Moving = command.MoveToApp is not null;
            // The call stays in the book while it is handed over, so a reconnect meanwhile does not take it for a leftover.
            // A move whose answer was lost went through if its StasisEnd removed the call from the book meanwhile.
            var result = await _handover.Execute(call.ChannelId, call.CallId, decision, moved: () => !_book.TryGetByChannel(call.ChannelId, out _));
            if (call.Moving && (!result.HandedOver || result.Final.MoveToApp is null))
                call.Moving = false; // not moved (gone, or fallen back to the dialplan): nothing more to wait for
            if (!call.Moving)
                _book.Remove(call);
            // A move is counted when its StasisEnd confirms it (an ApplicationMoveFailed may come instead).
            if (!call.Moving)
                Ended(call, result);
            TellWinner(call, result.Final);
        }
        await _broker.Ack(delivery);
    }

    private async Task OnTally(BasicDeliverEventArgs delivery)
    {
        ClaimTally? tally = null;
        try
        {
            tally = JsonSerializer.Deserialize<ClaimTally>(delivery.Body.Span, Wire.Json);
        }
        catch (JsonException)
        {
        }
        if (tally is null || tally.CallId == Guid.Empty || tally.Claims < 0)
        {
            await _broker.Park(delivery, _broker.CommandErrorQueue, "not a ClaimTally: needs callId and claims >= 0");
            return;
        }
        _recorder.Tallied(tally.CallId, tally.Claims);
        await _broker.Ack(delivery);
    }

    /// <summary>A winner told `accepted` whose call went back to the dialplan FAILED hears so (CallFailed on its queue).</summary>
    private void TellWinner(OpenCall call, Decision final)
    {
        if (call.Winner is not { } winner || final.Status != CallStatus.Failed)
            return;
        _outbox.Enqueue(OutboundMessage.For(new CallFailed(call.CallId, call.ChannelId, winner, final.Status, final.Reason, final.Detail, _clock.GetUtcNow())));
    }

    /// <summary>Counts how a call left the app (a broadcast call also records its decision latency).</summary>
    private void Ended(OpenCall? call, HandoverResult result)
    {
        var (status, reason) = (result.Final.Status, result.Final.Reason);
        if (status == CallStatus.Failed)
            _metrics.Failed(reason);
        else if (result.HandedOver && call is not null)
            _metrics.HandedOver(status, reason, _clock.GetUtcNow() - call.BroadcastAt);
        else
            _metrics.Ended(status, reason);
    }

    private async Task OnHeartbeat(BasicDeliverEventArgs delivery)
    {
        var (heartbeat, error) = _heartbeats.Read(delivery.Body.Span, delivery.BasicProperties.UserId);
        if (error is not null)
        {
            await _broker.Park(delivery, _broker.HeartbeatErrorQueue, error);
            return;
        }
        if (string.Equals(heartbeat!.Status, "stopping", StringComparison.OrdinalIgnoreCase))
            _live.Gone(heartbeat.App);
        else
            _live.Seen(heartbeat.App);
        await _broker.Ack(delivery);
    }

    /// <summary>The call id an earlier adapter run put on the channel when it broadcast the call, if any.</summary>
    private async Task<Guid?> CallIdOn(string channelId, CancellationToken cancellationToken)
    {
        try
        {
            return Guid.TryParse(await _ari.GetVariable(channelId, CallHandover.CallIdVariable, cancellationToken), out var id) ? id : null;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            _logger.LogWarning("Could not read {Variable} of channel {ChannelId}: {Error}", CallHandover.CallIdVariable, channelId, exception.Message);
            return null;
        }
    }

    /// <summary>Channels still in the app from before this connection have no broadcast behind them: fall them back now.</summary>
    private async Task Recover(DateTimeOffset connectedAt, CancellationToken cancellationToken)
    {
        IReadOnlyList<AriChannel> channels;
        try
        {
            channels = await _ari.ListChannels(cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            _logger.LogWarning("Could not list channels to recover: {Error}", exception.Message);
            return;
        }
        var recovered = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        _recovered = recovered;
        foreach (var channel in channels)
        {
            var inOurApp = channel.AppName == "Stasis" && channel.AppData.Split(',')[0] == _options.App;
            if (!inOurApp || _book.TryGetByChannel(channel.Id, out _) || _failing.ContainsKey(channel.Id) || channel.CreatedAt >= connectedAt)
                continue;
            if (_control.Owns(channel.Id) || _control.RecoverCreated(channel))
                continue;
            recovered[channel.Id] = true;
            FailAtOnce(channel, DispositionReason.AdapterRestarted, "the channel was left in the router's app by an earlier adapter run",
                knownCallId: await CallIdOn(channel.Id, cancellationToken));
        }

        try
        {
            await _control.RecoverBridges();
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            _logger.LogWarning("Could not list bridges to recover: {Error}", exception.Message);
        }

        // Calls from before this connection whose CDR is still open: those that ended while the event socket was down
        // get their end now (cause unknown); the others are subscribed again, in case Asterisk dropped the subscriptions.
        var alive = channels.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        // Calls whose channel went away while the socket was down (their StasisEnd was never heard) leave the book now.
        foreach (var call in _book.All())
            if (!alive.Contains(call.ChannelId) && call.BroadcastAt < connectedAt)
                Abandon(call, "ChannelDestroyed");
        foreach (var channelId in _recorder.OpenChannels(before: connectedAt))
        {
            if (!alive.Contains(channelId))
                _recorder.Destroyed(channelId, _clock.GetUtcNow(), null, "ended while the adapter was not connected to ARI");
            else
                _work.Run(() => Subscribe(channelId), "channel subscription");
        }
    }
}
