namespace CallRouter.Messages;

/// <summary>The router's decision for one call (router → the adapter that owns the channel). Claims = claims received so far.
/// Control: SUCCESS/controlled, the adapter keeps the channel and hands control to the winner (every ARI event of the call
/// when AllEvents).</summary>
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
    int Claims = 0,
    bool Control = false,
    bool AllEvents = false)
{
    public string Type => Topology.Types.ContinueCall;
}
