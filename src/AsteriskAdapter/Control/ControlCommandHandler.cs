using System.Text.Json;
using System.Text.RegularExpressions;
using CallRouter.Common;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Control;

/// <summary>
/// Answers every ControlCall exactly once: checks it (shape, call, owner, that the ids belong to the call), runs it on ARI,
/// and replies with what was created or with a reason. Refused as invalid-request or forbidden, it is also parked in
/// call.control_error; without a reply_to it can only be parked.
/// </summary>
public sealed partial class ControlCommandHandler(CallControl calls, AriControlClient ari, ControlBroker broker, AppOwnership ownership,
    ControlMetrics metrics, IOptions<AdapterOptions> options, ILogger<ControlCommandHandler> logger)
{
    /// <summary>At most this many channels and bridges per controlled call, so a runaway app cannot exhaust the box.</summary>
    public const int MaxCreatedPerCall = 16;

    private static readonly IReadOnlySet<string> HangupReasons = new HashSet<string>(StringComparer.Ordinal)
    {
        "normal", "busy", "congestion", "no_answer", "timeout", "rejected", "unallocated", "normal_unspecified", "interworking", "failure",
        "answered_elsewhere",
    };

    private readonly AdapterOptions _options = options.Value;

    public Task Start(CancellationToken cancellationToken) => broker.Start(OnCommand, OnUnrouted, cancellationToken);

    public async Task OnCommand(BasicDeliverEventArgs delivery)
    {
        var properties = delivery.BasicProperties;
        var (command, error) = Parse(delivery.Body.Span);
        if (string.IsNullOrEmpty(properties.ReplyTo))
        {
            await broker.Park(delivery, "a command needs reply_to (where to answer)" + (error is null ? "" : $"; also: {error}"));
            return;
        }
        ControlReply reply;
        try
        {
            reply = error is not null
                ? ControlReply.Fail(command?.CallId, command?.Command, ControlFailure.InvalidRequest, error)
                : await Execute(command!, properties.UserId);
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException)
        {
            reply = ControlReply.Fail(command?.CallId, command?.Command, ControlFailure.NodeUnavailable, $"ARI did not answer: {exception.Message}");
        }
        await broker.Reply(properties.ReplyTo, properties.CorrelationId, reply);
        metrics.Answered(command?.Command is { } name && ControlCommands.All.Contains(name) ? name : "unknown", reply.Ok ? "ok" : reply.Reason!);
        if (reply.Reason is ControlFailure.InvalidRequest or ControlFailure.Forbidden)
            await broker.Park(delivery, $"{reply.Reason}: {reply.Detail}");
        else
            await broker.Ack(delivery);
    }

    /// <summary>A command no adapter's queue took (its route names no running adapter): node-unavailable.</summary>
    public async Task OnUnrouted(BasicDeliverEventArgs delivery)
    {
        var properties = delivery.BasicProperties;
        var (command, _) = Parse(delivery.Body.Span);
        if (string.IsNullOrEmpty(properties.ReplyTo))
        {
            await broker.Park(delivery, $"unroutable command (route '{delivery.RoutingKey}') without reply_to");
            return;
        }
        await broker.Reply(properties.ReplyTo, properties.CorrelationId, ControlReply.Fail(command?.CallId, command?.Command, ControlFailure.NodeUnavailable,
            $"no adapter serves route '{delivery.RoutingKey}': its Asterisk or adapter is down, or the route is not one a CallControlStarted gave"));
        metrics.Answered(command?.Command is { } name && ControlCommands.All.Contains(name) ? name : "unknown", ControlFailure.NodeUnavailable);
        await broker.Ack(delivery);
    }

    /// <summary>The command, or why it cannot be read (with what could be read of it, to address the reply).</summary>
    public static (ControlCall? Command, string? Error) Parse(ReadOnlySpan<byte> body)
    {
        if (body.Length > Wire.MaxMessageBytes)
            return (null, $"message is {body.Length} bytes; the limit is {Wire.MaxMessageBytes}");
        ControlCall? command;
        try
        {
            command = JsonSerializer.Deserialize<ControlCall>(body, Wire.Json);
        }
        catch (JsonException exception)
        {
            return (null, $"not a command: {exception.Message}");
        }
        if (command is null)
            return (null, "a command must be a JSON object");
        if (command.CallId == Guid.Empty)
            return (command, "callId is missing");
        if (string.IsNullOrEmpty(command.Command))
            return (command, "command is missing");
        if (!ControlCommands.All.Contains(command.Command))
            return (command, $"unknown command '{command.Command}'; known: {string.Join(", ", ControlCommands.All.Order())}");
        return (command, null);
    }

    private async Task<ControlReply> Execute(ControlCall c, string? userId)
    {
        if (!calls.Sessions.TryGet(c.CallId, out var session))
            return calls.Sessions.EndedReason(c.CallId) is { } ended
                ? Fail(c, ControlFailure.NotInCall, $"call {c.CallId} has ended ({ended})")
                : Fail(c, ControlFailure.NotFound, $"no controlled call {c.CallId} on node {_options.Node}");
        if (ownership.Refusal(userId, session.Winner, "command") is { } refusal)
            return Fail(c, ControlFailure.Forbidden, refusal);
        if (session.IsEnded)
            return Fail(c, ControlFailure.NotInCall, $"call {c.CallId} is ending");

        return c.Command switch
        {
            ControlCommands.Answer => await OnChannel(c, session, defaultCaller: true, id => ari.Post($"channels/{Seg(id)}/answer")),
            ControlCommands.Hangup => await Hangup(c, session),
            ControlCommands.Play => await Play(c, session),
            ControlCommands.StopPlayback => await StopPlayback(c, session),
            ControlCommands.SendDtmf => !ValidDtmf(c.Dtmf)
                ? Fail(c, ControlFailure.InvalidRequest, "dtmf must be 1 to 64 of 0-9 A-D * # , (pause)")
                : await OnChannel(c, session, defaultCaller: true, id => ari.Post($"channels/{Seg(id)}/dtmf", ("dtmf", c.Dtmf))),
            ControlCommands.SetVariable => string.IsNullOrEmpty(c.Variable)
                ? Fail(c, ControlFailure.InvalidRequest, "variable is missing")
                : await OnChannel(c, session, defaultCaller: true, id => ari.Post($"channels/{Seg(id)}/variable", ("variable", c.Variable), ("value", c.Value))),
            ControlCommands.GetVariable => await GetVariable(c, session),
            ControlCommands.Continue => await Continue(c, session),
            ControlCommands.CreateChannel => await CreateChannel(c, session),
            ControlCommands.Dial => c.Timeout is < 1 or > 3600
                ? Fail(c, ControlFailure.InvalidRequest, "timeout must be 1 to 3600 seconds")
                : await OnChannel(c, session, defaultCaller: false, id => ari.Post($"channels/{Seg(id)}/dial", ("timeout", c.Timeout?.ToString()))),
            ControlCommands.CreateBridge => await CreateBridge(c, session),
            ControlCommands.DestroyBridge => await DestroyBridge(c, session),
            ControlCommands.AddChannel => await BridgeMember(c, session, "addChannel"),
            ControlCommands.RemoveChannel => await BridgeMember(c, session, "removeChannel"),
            _ => Fail(c, ControlFailure.InvalidRequest, $"unknown command '{c.Command}'"),
        };
    }

    /// <summary>A request about one of the call's channels (the caller's when none is named and <paramref name="defaultCaller"/>).</summary>
    private async Task<ControlReply> OnChannel(ControlCall c, ControlSession session, bool defaultCaller, Func<string, Task<AriAnswer>> request)
    {
        if (Channel(c, session, defaultCaller, out var id) is { } refused)
            return refused;
        return Answer(c, await request(id));
    }

    private async Task<ControlReply> Hangup(ControlCall c, ControlSession session)
    {
        if (c.Reason is { } reason && !HangupReasons.Contains(reason))
            return Fail(c, ControlFailure.InvalidRequest, $"reason '{reason}' is not one of {string.Join(", ", HangupReasons.Order())}");
        if (Channel(c, session, defaultCaller: true, out var id) is { } refused)
            return refused;
        var isCaller = id == session.CallerChannelId;
        if (isCaller)
            session.Leaving = ControlEnding.HungUp;
        var answer = await ari.Delete($"channels/{Seg(id)}", ("reason", c.Reason ?? "normal"));
        if (isCaller && answer.Ok)
            await calls.End(session, ControlEnding.HungUp, $"hung up by {session.Winner}");
        else if (isCaller)
            session.Leaving = null;
        return Answer(c, answer);
    }

    private async Task<ControlReply> Play(ControlCall c, ControlSession session)
    {
        if (string.IsNullOrEmpty(c.Media))
            return Fail(c, ControlFailure.InvalidRequest, "media is missing (e.g. sound:hello-world, tone:440)");
        string path;
        if (c.BridgeId is { } bridgeId)
        {
            if (c.ChannelId is not null)
                return Fail(c, ControlFailure.InvalidRequest, "give channelId or bridgeId, not both");
            if (!session.Bridges.ContainsKey(bridgeId))
                return Fail(c, ControlFailure.NotInCall, $"bridge {bridgeId} is not part of call {c.CallId}");
            path = $"bridges/{Seg(bridgeId)}/play";
        }
        else
        {
            if (Channel(c, session, defaultCaller: true, out var channelId) is { } refused)
                return refused;
            path = $"channels/{Seg(channelId)}/play";
        }
        // The id is ours and registered first: PlaybackStarted may arrive before ARI's answer.
        var playbackId = Guid.NewGuid().ToString();
        calls.Sessions.AddPlayback(session, playbackId);
        var answer = await ari.Post(path, ("media", c.Media), ("playbackId", playbackId));
        if (!answer.Ok)
            calls.Sessions.RemovePlayback(session, playbackId);
        return answer.Ok ? Done(c) with { PlaybackId = playbackId } : Answer(c, answer);
    }

    private async Task<ControlReply> StopPlayback(ControlCall c, ControlSession session)
    {
        if (string.IsNullOrEmpty(c.PlaybackId))
            return Fail(c, ControlFailure.InvalidRequest, "playbackId is missing");
        if (!session.Playbacks.ContainsKey(c.PlaybackId))
            return Fail(c, ControlFailure.NotInCall, $"playback {c.PlaybackId} is not a playing playback of call {c.CallId}");
        return Answer(c, await ari.Delete($"playbacks/{Seg(c.PlaybackId)}"));
    }

    private async Task<ControlReply> GetVariable(ControlCall c, ControlSession session)
    {
        if (string.IsNullOrEmpty(c.Variable))
            return Fail(c, ControlFailure.InvalidRequest, "variable is missing");
        if (Channel(c, session, defaultCaller: true, out var id) is { } refused)
            return refused;
        var answer = await ari.Get($"channels/{Seg(id)}/variable", ("variable", c.Variable));
        return answer.Ok ? Done(c) with { ChannelId = id, Value = answer.Field("value") } : Answer(c, answer);
    }

    /// <summary>The caller back to the dialplan (the target, or the next priority); ROUTER_STATUS stays SUCCESS / controlled. Ends the session.</summary>
    private async Task<ControlReply> Continue(ControlCall c, ControlSession session)
    {
        if (c.ChannelId is { } named && named != session.CallerChannelId)
            return Fail(c, ControlFailure.InvalidRequest, "continue applies to the caller's channel only; hang up the channels you created");
        if (c.Target is { } t && (string.IsNullOrWhiteSpace(t.Context) || string.IsNullOrWhiteSpace(t.Extension) || t.Priority < 1))
            return Fail(c, ControlFailure.InvalidRequest, "target needs context, extension and a priority of at least 1");
        session.Leaving = ControlEnding.Continued;
        var answer = await ari.Post($"channels/{Seg(session.CallerChannelId)}/continue",
            ("context", c.Target?.Context), ("extension", c.Target?.Extension), ("priority", c.Target?.Priority.ToString()));
        if (answer.Ok)
            await calls.End(session, ControlEnding.Continued, c.Target is { } target ? $"{target.Context},{target.Extension},{target.Priority}" : "next priority");
        else
            session.Leaving = null;
        return Answer(c, answer);
    }

    private async Task<ControlReply> CreateChannel(ControlCall c, ControlSession session)
    {
        if (string.IsNullOrEmpty(c.Endpoint) || c.Endpoint.Length > 256)
            return Fail(c, ControlFailure.InvalidRequest, "endpoint is missing (e.g. PJSIP/alice or Local/s@callee/n)");
        if (session.Channels.Count >= MaxCreatedPerCall)
            return Fail(c, ControlFailure.Conflict, $"a call may hold at most {MaxCreatedPerCall} created channels");
        // Our own id, registered first: the channel's StasisStart may arrive before ARI's answer, and must not be taken for a new call.
        var channelId = $"ctl-{Guid.NewGuid():N}";
        calls.Sessions.AddChannel(session, channelId);
        var answer = await ari.Post("channels/create", ("endpoint", c.Endpoint), ("app", _options.App),
            ("appArgs", $"{CallControl.CreatedMarker},{c.CallId}"), ("channelId", channelId));
        if (!answer.Ok)
        {
            calls.Sessions.RemoveChannel(session, channelId);
            return Answer(c, answer);
        }
        // Asterisk ends the app's own subscription with StasisEnd: subscribe to hear the channel's ChannelDestroyed too.
        await ari.Post($"applications/{Seg(_options.App)}/subscription", ("eventSource", "channel:" + channelId));
        if (session.IsEnded)
            await ari.Delete($"channels/{Seg(channelId)}", ("reason", "normal")); // the call ended meanwhile
        return Done(c) with { ChannelId = channelId };
    }

    private async Task<ControlReply> CreateBridge(ControlCall c, ControlSession session)
    {
        if (session.Bridges.Count >= MaxCreatedPerCall)
            return Fail(c, ControlFailure.Conflict, $"a call may hold at most {MaxCreatedPerCall} bridges");
        var bridgeId = $"ctl-{Guid.NewGuid():N}";
        calls.Sessions.AddBridge(session, bridgeId);
        var answer = await ari.Post("bridges", ("type", "mixing"), ("name", CallControl.BridgePrefix + c.CallId), ("bridgeId", bridgeId));
        if (!answer.Ok)
        {
            calls.Sessions.RemoveBridge(session, bridgeId);
            return Answer(c, answer);
        }
        if (session.IsEnded)
            await ari.Delete($"bridges/{Seg(bridgeId)}");
        return Done(c) with { BridgeId = bridgeId };
    }

    private async Task<ControlReply> DestroyBridge(ControlCall c, ControlSession session)
    {
        if (Bridge(c, session) is { } refused)
            return refused;
        var answer = await ari.Delete($"bridges/{Seg(c.BridgeId!)}");
        if (answer.Ok || answer.Status == 404)
            calls.Sessions.RemoveBridge(session, c.BridgeId!);
        return Answer(c, answer);
    }

    private async Task<ControlReply> BridgeMember(ControlCall c, ControlSession session, string operation)
    {
        if (Bridge(c, session) is { } refused)
            return refused;
        if (c.ChannelId is null)
            return Fail(c, ControlFailure.InvalidRequest, "channelId is missing");
        if (Channel(c, session, defaultCaller: false, out var channelId) is { } notOurs)
            return notOurs;
        return Answer(c, await ari.Post($"bridges/{Seg(c.BridgeId!)}/{operation}", ("channel", channelId)));
    }

    private static ControlReply? Bridge(ControlCall c, ControlSession session)
    {
        if (string.IsNullOrEmpty(c.BridgeId))
            return Fail(c, ControlFailure.InvalidRequest, "bridgeId is missing");
        return session.Bridges.ContainsKey(c.BridgeId) ? null : Fail(c, ControlFailure.NotInCall, $"bridge {c.BridgeId} is not part of call {c.CallId}");
    }

    private static ControlReply? Channel(ControlCall c, ControlSession session, bool defaultCaller, out string channelId)
    {
        channelId = c.ChannelId ?? (defaultCaller ? session.CallerChannelId : "");
        if (channelId.Length == 0)
            return Fail(c, ControlFailure.InvalidRequest, "channelId is missing");
        return session.HasChannel(channelId) ? null : Fail(c, ControlFailure.NotInCall, $"channel {channelId} is not part of call {c.CallId}");
    }

    private ControlReply Answer(ControlCall c, AriAnswer answer)
    {
        if (answer.Ok)
            return Done(c);
        logger.LogInformation("Control command {Command} of call {CallId}: ARI answered {Status} {Error}", c.Command, c.CallId, answer.Status, answer.ErrorText);
        return Fail(c, answer.FailureReason, $"Asterisk answered {answer.Status}: {answer.ErrorText}");
    }

    private static ControlReply Done(ControlCall c) => new(c.CallId, c.Command, true);

    private static ControlReply Fail(ControlCall c, string reason, string detail) => ControlReply.Fail(c.CallId, c.Command, reason, detail);

    private static string Seg(string id) => AriControlClient.Segment(id);

    private static bool ValidDtmf(string? dtmf) => dtmf is not null && DtmfPattern().IsMatch(dtmf);

    [GeneratedRegex("^[0-9A-Da-d*#,]{1,64}$")]
    private static partial Regex DtmfPattern();
}
