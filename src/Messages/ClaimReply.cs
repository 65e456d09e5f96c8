namespace CallRouter.Messages;

/// <summary>The router's answer to one claim (router → the claim's reply_to).</summary>
public sealed record ClaimReply(
    Guid? CallId,
    string? App,
    bool Accepted,
    string? Reason,
    string? Detail,
    string? Winner)
{
    public string Type => Topology.Types.ClaimReply;

    public static ClaimReply Accept(Guid callId, string app) => new(callId, app, true, null, null, app);

    public static ClaimReply Reject(Guid? callId, string? app, string reason, string detail, string? winner = null) =>
        new(callId, app, false, reason, detail, winner);
}
