using System.Diagnostics.Metrics;
using CallRouter.Messages;

namespace CallRouter.Router.Observability;

/// <summary>
/// The router's meter ("CallRouter.Router"). Counted where messages actually leave (Outbound's send callbacks run when
/// the outbox releases them), so a consume that is retried is never counted twice. The "app" label only ever holds
/// the name of an app a call was offered to (the dialplan's audience); claims naming any other app (forbidden, invalid,
/// for unknown calls or calls not offered to them) are counted under <see cref="UnknownApp"/>, so no app user can mint
/// new series.
/// </summary>
public sealed class RouterMetrics
{
    public const string MeterName = "CallRouter.Router";

    /// <summary>The "app" label of claims for apps the call was not offered to.</summary>
    public const string UnknownApp = "_unknown";

    private readonly Counter<long> _claims;
    private readonly Counter<long> _wins;
    private readonly Counter<long> _timeouts;
    private readonly Counter<long> _decisions;
    private readonly Counter<long> _reported;
    private readonly Counter<long> _failed;

    public RouterMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _claims = meter.CreateCounter<long>("callrouter.router.claims", "{claim}",
            "Claims answered, by app and outcome (accepted, already-claimed, not-found, finished, invalid-request, ...)");
        _wins = meter.CreateCounter<long>("callrouter.router.wins", "{call}", "Calls won, by app");
        _timeouts = meter.CreateCounter<long>("callrouter.router.timeouts", "{call}",
            "Calls timed out with no claim, counted once for every app in their audience");
        _decisions = meter.CreateCounter<long>("callrouter.router.decisions", "{call}",
            "Decisions sent to adapters, by status and reason");
        _reported = meter.CreateCounter<long>("callrouter.router.reported_endings", "{call}",
            "Calls an adapter ended on its own and reported (CallEnded), by status and reason");
        _failed = meter.CreateCounter<long>("callrouter.router.failed", "{call}",
            "FAILED calls the router heard of, by reason");
    }

    public void ClaimAnswered(ClaimReply reply, bool offered) =>
        _claims.Add(1, new KeyValuePair<string, object?>("app", offered && reply.App is { } app ? app : UnknownApp),
            new KeyValuePair<string, object?>("outcome", reply.Accepted ? "accepted" : reply.Reason ?? "unknown"));

    public void Decided(ContinueCall decision, IReadOnlyList<string>? audience)
    {
        _decisions.Add(1, new KeyValuePair<string, object?>("status", decision.Status),
            new KeyValuePair<string, object?>("reason", decision.Reason ?? ""));
        if (decision.Status == CallStatus.Success && decision.Winner is { } winner)
            _wins.Add(1, new KeyValuePair<string, object?>("app", winner));
        else if (decision.Status == CallStatus.Timeout && audience is not null)
            foreach (var app in audience)
                _timeouts.Add(1, new KeyValuePair<string, object?>("app", app));
        else if (decision.Status == CallStatus.Failed)
            _failed.Add(1, new KeyValuePair<string, object?>("reason", decision.Reason ?? ""));
    }

    public void EndReported(CallEnded ended)
    {
        _reported.Add(1, new KeyValuePair<string, object?>("status", ended.Status),
            new KeyValuePair<string, object?>("reason", ended.Reason));
        if (ended.Status == CallStatus.Failed)
            _failed.Add(1, new KeyValuePair<string, object?>("reason", ended.Reason));
    }
}
