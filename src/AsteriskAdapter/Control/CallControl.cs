using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.AsteriskAdapter.Observability;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.Timeout;

namespace CallRouter.AsteriskAdapter.Control;

/// <summary>
/// Controlled calls: takes a call the router handed to its winner, forwards the ARI events of the call's channels, bridges
/// and playbacks to that app, and ends every session in a defined way (README "Call control"): the app continues or
/// hangs up the caller, the caller hangs up, the app stops heartbeating, or the adapter stops. Whatever ends it, the
/// channels the app created are hung up and its bridges destroyed.
/// </summary>
public sealed class CallControl(AriClient ari, CallHandover handover, AriControlClient control, ControlBroker broker, ControlSessions sessions, LiveApps live,
    CallRecorder recorder, AdapterMetrics metrics, ControlMetrics controlMetrics, BackgroundWork work, TimeProvider clock, IOptions<AdapterOptions> options, ILogger<CallControl> logger)
{
    /// <summary>First Stasis argument of every channel the adapter creates for a controlled call (then the call id).</summary>
    public const string CreatedMarker = "call-control";

    /// <summary>Name prefix of every bridge the adapter creates for a controlled call (then the call id).</summary>
    public const string BridgePrefix = "call-control-";

    /// <summary>ARI events passed on to the app; the rest (ChannelVarset such as BRIDGEPEER, ChannelDialplan …) is noise.</summary>
    public static readonly IReadOnlySet<string> Forwarded = new HashSet<string>(StringComparer.Ordinal)
    {
        "StasisStart", "StasisEnd", "ChannelStateChange", "ChannelDtmfReceived", "ChannelHangupRequest", "ChannelDestroyed",
        "Dial", "PlaybackStarted", "PlaybackFinished", "ChannelEnteredBridge", "ChannelLeftBridge", "BridgeDestroyed",
    };

    private readonly AdapterOptions _options = options.Value;

    public ControlSessions Sessions => sessions;

    /// <summary>The router decided SUCCESS with control: the channel stays in the app and the winner is told.</summary>
    public async Task Take(OpenCall call, ContinueCall command)
    {
        var session = new ControlSession(call.CallId, command.Winner!, call.ChannelId, call.Options.Args, command.AllEvents);
        sessions.Add(session);
        recorder.Deciding(call.ChannelId, new Decision(CallStatus.Success, DispositionReason.Controlled, command.Winner, call.Options.Args, ClaimedAt: command.ClaimedAt));

        var variables = new List<(string, string)>
        {
            (CallHandover.StatusVariable, CallStatus.Success), (CallHandover.ReasonVariable, DispositionReason.Controlled),
            (CallHandover.CallIdVariable, call.CallId.ToString()), (CallHandover.WinnerVariable, session.Winner),
        };
        if (call.Options.Args is { Count: > 0 } args)
            variables.Add((CallHandover.ArgsVariable, string.Join(':', args)));
        AriOutcome[] outcomes;
        string? ariError = null;
        try
        {
            outcomes = await Task.WhenAll(variables.Select(v => ari.SetVariable(call.ChannelId, v.Item1, v.Item2)));
        }
        catch (Exception exception) when (exception is HttpRequestException or TimeoutRejectedException or OperationCanceledException)
        {
            (outcomes, ariError) = ([], exception is HttpRequestException ? exception.Message : "ARI did not answer in time");
        }

        await broker.PublishEvent(session.Winner, Topology.Types.CallControlStarted, call.CallId,
            new CallControlStarted(call.CallId, session.Winner, call.ChannelId, _options.Node, broker.Route, clock.GetUtcNow()));
        session.Started = true;
        if (ariError is not null)
        {
            // The app was told it won: it hears the call start and end, and the caller goes back FAILED / ari-error.
            await End(session, ControlEnding.AriError, $"control handover failed: {ariError}");
            return;
        }
        if (outcomes.Any(o => o != AriOutcome.Done))
        {
            await End(session, ControlEnding.CallerHangup, "the caller left before control started");
            return;
        }
        recorder.HandedOver(call.ChannelId);
        metrics.HandedOver(CallStatus.Success, DispositionReason.Controlled, clock.GetUtcNow() - call.BroadcastAt);
        logger.LogInformation("Call {CallId} is controlled by {App}", call.CallId, session.Winner);
    }

    /// <summary>True when the channel belongs to a controlled call (its own events go through <see cref="OnEvent"/>).</summary>
    public bool Owns(string channelId) => sessions.ByChannel(channelId) is not null;

    /// <summary>A channel left in the app by an earlier run: true if it is one the adapter created for a controlled call (it is hung up).</summary>
    public bool RecoverCreated(AriChannel channel)
    {
        var args = channel.AppData.Split(',');
        if (args.Length < 2 || args[1] != CreatedMarker)
            return false;
        work.Run(() => control.Delete($"channels/{AriControlClient.Segment(channel.Id)}", ("reason", "normal")), "hang up a leftover created channel");
        return true;
    }

    /// <summary>After an ARI (re)connect: destroys bridges made for controlled calls that no session holds any more.</summary>
    public async Task RecoverBridges()
    {
        var answer = await control.Get("bridges");
        if (!answer.Ok)
            return;
        using var document = System.Text.Json.JsonDocument.Parse(answer.Body);
        foreach (var bridge in document.RootElement.EnumerateArray())
        {
            var id = AriEvent.Str(bridge, "id");
            if (id is not null && AriEvent.Str(bridge, "name")?.StartsWith(BridgePrefix, StringComparison.Ordinal) == true && sessions.ByBridge(id) is null)
                await control.Delete($"bridges/{AriControlClient.Segment(id)}");
        }
    }

    /// <summary>Handles an event of a controlled call; false when the event is none of call control's business.</summary>
    public async Task<bool> OnEvent(AriEvent e)
    {
        var parts = e.Control;
        var channelId = e.Type == "Dial" ? parts?.PeerId : e.Channel?.Id;
        var session = e.Type switch
        {
            "PlaybackStarted" or "PlaybackFinished" => sessions.ByPlayback(parts?.PlaybackId),
            "BridgeDestroyed" => sessions.ByBridge(parts?.BridgeId),
            _ => sessions.ByChannel(channelId),
        };
        if (session is null)
        {
            if (e.Type == "StasisStart" && e.Args is [CreatedMarker, ..] && e.Channel is { } orphan)
            {
                // A channel created for a call whose session ended meanwhile: nobody will drive it.
                work.Run(() => control.Delete($"channels/{AriControlClient.Segment(orphan.Id)}", ("reason", "normal")), "hang up an orphan created channel");
                return true;
            }
            return false;
        }

        await session.Gate.WaitAsync();
        try
        {
            if (!session.IsEnded && (Forwarded.Contains(e.Type) || (session.AllEvents && session.Started)))
            {
                var message = new CallControlEvent(session.CallId, e.Type, e.Timestamp, channelId,
                    e.Type == "Dial" ? parts?.PeerState : parts?.ChannelState, parts?.BridgeId, parts?.PlaybackId, parts?.PlaybackState,
                    parts?.DialStatus, parts?.Digit, e.Cause, e.CauseText, parts?.Variable, parts?.Value);
                await broker.PublishEvent(session.Winner, e.Type, session.CallId, message);
            }
        }
        finally
        {
            session.Gate.Release();
        }

        switch (e.Type)
        {
            case "StasisStart" when channelId != session.CallerChannelId && e.Channel is { } created:
                recorder.Created(created, session.CallId, session.Winner, e.Timestamp);
                break;
            case "ChannelStateChange" when parts?.ChannelState == "Up" && channelId is not null:
                recorder.Answered(channelId, e.Timestamp);
                break;
            case "ChannelHangupRequest" or "StasisEnd" or "ChannelDestroyed" when channelId == session.CallerChannelId:
                work.Run(() => End(session, session.Leaving ?? ControlEnding.CallerHangup, null), "end a controlled call");
                break;
            case "ChannelDestroyed" when channelId is not null:
                sessions.RemoveChannel(session, channelId);
                break;
            case "PlaybackFinished" when parts?.PlaybackId is { } playback:
                sessions.RemovePlayback(session, playback);
                break;
            case "BridgeDestroyed" when parts?.BridgeId is { } bridge:
                sessions.RemoveBridge(session, bridge);
                break;
        }
        return true;
    }

    /// <summary>Ends sessions whose app is no longer live (no heartbeat within the liveness timeout, or "stopping").</summary>
    public async Task WatchLiveness(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250), clock);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
                foreach (var session in sessions.All)
                    if (!session.IsEnded && !live.IsLive(session.Winner))
                        work.Run(() => End(session, ControlEnding.AppGone, $"app '{session.Winner}' stopped heartbeating"), "end a controlled call");
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The adapter is stopping: every caller back to the dialplan (FAILED / adapter-stopping), the rest cleaned up.</summary>
    public Task StopAll() =>
        Task.WhenAll(sessions.All.Select(s => End(s, ControlEnding.AdapterStopping, "the adapter is stopping")));

    /// <summary>
    /// Ends a session once: sends the caller back to the dialplan when the app is gone or the adapter stops, hangs up the
    /// channels it created, destroys its bridges, and tells the app (CallControlEnded, its last event for the call).
    /// </summary>
    public async Task End(ControlSession session, string ending, string? detail)
    {
        await session.Gate.WaitAsync();
        try
        {
            if (!session.TryEnd())
                return;
        }
        finally
        {
            session.Gate.Release();
        }
        logger.LogInformation("Controlled call {CallId} of {App} ends: {Ending}", session.CallId, session.Winner, ending);

        try
        {
            if (ending is ControlEnding.AppGone or ControlEnding.AdapterStopping or ControlEnding.AriError)
                await SendCallerBack(session, ending switch
                {
                    ControlEnding.AppGone => DispositionReason.AppGone,
                    ControlEnding.AriError => DispositionReason.AriError,
                    _ => DispositionReason.AdapterStopping,
                }, detail ?? ending);
            await Task.WhenAll(session.Channels.Keys.Select(id => Quietly(() => control.Delete($"channels/{AriControlClient.Segment(id)}", ("reason", "normal")))));
            await Task.WhenAll(session.Bridges.Keys.Select(id => Quietly(() => control.Delete($"bridges/{AriControlClient.Segment(id)}"))));
        }
        finally
        {
            recorder.ControlEnded(session.CallerChannelId, ending);
            controlMetrics.Ended(ending);
            sessions.Remove(session, ending);
            try
            {
                await broker.PublishEvent(session.Winner, Topology.Types.CallControlEnded, session.CallId,
                    new CallControlEnded(session.CallId, session.Winner, ending, detail, clock.GetUtcNow()));
            }
            catch (Exception exception)
            {
                // The clean-up on Asterisk is done; only the app's notice is lost (e.g. the broker is down at shutdown).
                logger.LogWarning("CallControlEnded for call {CallId} not published: {Error}", session.CallId, exception.Message);
            }
        }
    }

    private async Task SendCallerBack(ControlSession session, string reason, string detail)
    {
        var id = session.CallerChannelId;
        if (reason != DispositionReason.AdapterStopping)
        {
            // Retried until the caller has left the app or is gone (FAILED / ari-error if ARI keeps failing).
            await handover.Execute(id, session.CallId, new Decision(CallStatus.Failed, reason, session.Winner, session.Args, detail));
            return;
        }
        // Stopping: the handover's retries end with the host, so one direct try each (every request has its own retries).
        try
        {
            var set = await Task.WhenAll(
                ari.SetVariable(id, CallHandover.StatusVariable, CallStatus.Failed),
                ari.SetVariable(id, CallHandover.ReasonVariable, reason),
                ari.SetVariable(id, CallHandover.DetailVariable, detail));
            if (set.All(o => o == AriOutcome.Done))
                await ari.Continue(id, null, null, null);
        }
        catch (Exception exception) when (exception is HttpRequestException or TimeoutRejectedException or OperationCanceledException)
        {
            logger.LogError("Controlled call {CallId}: the caller could not be sent back while the adapter stops ({Error}); the next run fails it as adapter-restarted",
                session.CallId, exception.Message);
        }
    }

    private async Task Quietly(Func<Task<AriAnswer>> request)
    {
        try
        {
            await request();
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException)
        {
            logger.LogWarning("Call control clean-up request failed: {Error}", exception.Message);
        }
    }
}
