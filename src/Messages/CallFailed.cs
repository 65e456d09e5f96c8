namespace CallRouter.Messages;

/// <summary>
/// Tells the winner that a call it was told `accepted` for did not reach it after all: the move to its ARI app failed
/// (move-failed) or ARI kept failing (ari-error), so the call went back to the dialplan as FAILED (adapter → the
/// winner's queue, AMQP type CallFailed).
/// </summary>
public sealed record CallFailed(Guid CallId, string ChannelId, string Winner, string Status, string Reason, string? Detail, DateTimeOffset FailedAt)
{
    public string Type => Topology.Types.CallFailed;
}
