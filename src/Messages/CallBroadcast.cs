namespace CallRouter.Messages;

/// <summary>A call offered to every live app whose name matches the filter (adapter → apps and router).</summary>
public sealed record CallBroadcast(
    Guid CallId,
    string ChannelId,
    string ChannelName,
    string CallerNumber,
    string CallerName,
    string Extension,
    string Context,
    IReadOnlyList<string> Args,
    string Node,
    string AsteriskId,
    string? Filter,
    bool NotifyClaimed,
    IReadOnlyList<string> Audience,
    DateTimeOffset ChannelCreatedAt,
    DateTimeOffset BroadcastAt,
    DateTimeOffset Deadline,
    int TimeoutMs)
{
    public string Type => Topology.Types.CallBroadcast;
}
