namespace CallRouter.Messages;

/// <summary>
/// The one answer to a <see cref="ControlCall"/> (adapter → reply_to). <paramref name="Ok"/> true: done, with the ids it
/// created (or the variable's value). False: <paramref name="Reason"/> (one of <see cref="ControlFailure"/>) and a detail.
/// </summary>
public sealed record ControlReply(
    Guid? CallId,
    string? Command,
    bool Ok,
    string? Reason = null,
    string? Detail = null,
    string? ChannelId = null,
    string? BridgeId = null,
    string? PlaybackId = null,
    string? Value = null)
{
    public string Type => Topology.Types.ControlReply;

    public static ControlReply Fail(Guid? callId, string? command, string reason, string detail) => new(callId, command, false, reason, detail);
}

/// <summary>Why a command was refused (ControlReply.reason).</summary>
public static class ControlFailure
{
    /// <summary>No such call, channel, bridge, playback or variable (ARI 404).</summary>
    public const string NotFound = "not-found";

    /// <summary>The call's session has ended, or the channel, bridge or playback is not part of this call.</summary>
    public const string NotInCall = "not-in-call";

    /// <summary>The resource is in the wrong state for the command (ARI 409/422: not in Stasis, already dialed, not in the bridge).</summary>
    public const string Conflict = "conflict";

    /// <summary>Malformed JSON, unknown command, a missing or mistyped field.</summary>
    public const string InvalidRequest = "invalid-request";

    /// <summary>The command's user_id does not own the app that won the call, or it has none.</summary>
    public const string Forbidden = "forbidden";

    /// <summary>Asterisk refused or failed the operation (ARI 5xx, e.g. "Allocation failed" for an unknown technology).</summary>
    public const string Failed = "failed";

    /// <summary>No adapter serves the command's route (its Asterisk or adapter is down), or ARI did not answer.</summary>
    public const string NodeUnavailable = "node-unavailable";
}
