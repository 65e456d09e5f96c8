namespace CallRouter.Messages;

/// <summary>The router's decision for one call (router → the adapter that owns the channel). Claims = claims received so far.</summary>
public sealed record ContinueCall(
    Guid CallId,
    string ChannelId,
    string Status,
    string? Winner,
    string? Reason,
    DialplanTarget? Target,
    string? MoveToApp,
    IReadOnlyList<string>? AppArgs,
    DateTimeOffset DecidedAt,
    DateTimeOffset? ClaimedAt = null,
    int Claims = 0)
{
    public string Type => Topology.Types.ContinueCall;
}
