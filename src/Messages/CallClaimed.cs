namespace CallRouter.Messages;

/// <summary>Tells every app in the audience who won (router → apps, only when the dialplan asked for notify).</summary>
public sealed record CallClaimed(Guid CallId, string ChannelId, string Winner, DateTimeOffset ClaimedAt)
{
    public string Type => Topology.Types.CallClaimed;
}
