namespace CallRouter.Messages;

/// <summary>The router's decision for one call (router → the adapter that owns the channel).</summary>
public sealed record ContinueCall(
    Guid CallId,
    string ChannelId,
    string Status,
    string? Winner,
    string? Reason,
    DialplanTarget? Target,
    string? MoveToApp,
    IReadOnlyList<string>? AppArgs,
    DateTimeOffset DecidedAt)
{
    public string Type => Topology.Types.ContinueCall;
}
