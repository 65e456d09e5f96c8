using CallRouter.Messages;

namespace CallRouter.Router.Saga;

/// <summary>
/// Who may take a call: the first claim from an app in the audience, before the deadline, while the call is open.
/// The winner claiming again gets the same yes (claims are delivered at least once).
/// </summary>
public static class ClaimRules
{
    public static ClaimReply Judge(CallState call, ClaimCall claim, DateTimeOffset now)
    {
        if (call.Winner is { } won && won == claim.App)
            return ClaimReply.Accept(claim.CallId, claim.App);
        if (call.Winner is { } winner)
            return ClaimReply.Reject(claim.CallId, claim.App, RejectReason.AlreadyClaimed, $"call already claimed by {winner}", winner);
        if (call.Status is { } status)
            return ClaimReply.Reject(claim.CallId, claim.App, RejectReason.Finished, $"call already ended ({status}: {call.Reason})");
        if (call.Deadline is { } deadline && now > deadline)
            return ClaimReply.Reject(claim.CallId, claim.App, RejectReason.Finished, "the broadcast deadline has passed");
        if (!call.Audience.Contains(claim.App))
            return ClaimReply.Reject(claim.CallId, claim.App, RejectReason.InvalidRequest, $"app '{claim.App}' was not offered this call");
        return ClaimReply.Accept(claim.CallId, claim.App);
    }
}
