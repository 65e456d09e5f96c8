namespace CallRouter.Messages;

/// <summary>The adapter ended a broadcast on its own: caller hung up (ABANDONED) or the router did not answer in time (adapter → router).</summary>
public sealed record CallEnded(Guid CallId, string ChannelId, string Status, string Reason, DateTimeOffset EndedAt)
{
    public string Type => Topology.Types.CallEnded;
}
