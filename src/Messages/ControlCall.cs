namespace CallRouter.Messages;

/// <summary>
/// A command from the winning app about its controlled call (app → the adapter owning the call, via
/// <see cref="Topology.ControlExchange"/>). The reply (<see cref="ControlReply"/>) goes to reply_to with the correlation_id.
/// <paramref name="Command"/> is one of <see cref="ControlCommands"/>; each reads only the fields it needs.
/// </summary>
public sealed record ControlCall(
    Guid CallId,
    string Command,
    string? ChannelId = null,
    string? BridgeId = null,
    string? PlaybackId = null,
    string? Media = null,
    string? Dtmf = null,
    string? Variable = null,
    string? Value = null,
    string? Endpoint = null,
    int? Timeout = null,
    string? Reason = null,
    DialplanTarget? Target = null);

/// <summary>The command names a <see cref="ControlCall"/> may carry.</summary>
public static class ControlCommands
{
    public const string Answer = "answer";
    public const string Hangup = "hangup";
    public const string Play = "play";
    public const string StopPlayback = "stopPlayback";
    public const string SendDtmf = "sendDtmf";
    public const string SetVariable = "setVariable";
    public const string GetVariable = "getVariable";
    public const string Continue = "continue";
    public const string CreateChannel = "createChannel";
    public const string Dial = "dial";
    public const string CreateBridge = "createBridge";
    public const string DestroyBridge = "destroyBridge";
    public const string AddChannel = "addChannel";
    public const string RemoveChannel = "removeChannel";

    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal)
    {
        Answer, Hangup, Play, StopPlayback, SendDtmf, SetVariable, GetVariable, Continue, CreateChannel, Dial,
        CreateBridge, DestroyBridge, AddChannel, RemoveChannel,
    };
}
