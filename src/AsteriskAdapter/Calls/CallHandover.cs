using CallRouter.AsteriskAdapter.Ari;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>Ends a call's time in the router's Stasis app: sets the ROUTER_* variables, then continues or moves the channel.</summary>
public sealed class CallHandover(AriClient ari, CallRecorder recorder, IOptions<AdapterOptions> options, ILogger<CallHandover> logger)
{
    public const string StatusVariable = "ROUTER_STATUS";
    public const string ReasonVariable = "ROUTER_REASON";
    public const string WinnerVariable = "ROUTER_WINNER";
    public const string ArgsVariable = "ROUTER_ARGS";
    public const string CallIdVariable = "ROUTER_CALL_ID";
    public const string DetailVariable = "ROUTER_DETAIL";

    /// <summary>Hands the channel over as the decision says. Returns false when the channel was already gone.</summary>
    public async Task<bool> Execute(string channelId, Guid? callId, Decision decision)
    {
        recorder.Deciding(channelId, decision);
        var done = await HandOver(channelId, callId, decision);
        if (done)
            recorder.HandedOver(channelId);
        return done;
    }

    private async Task<bool> HandOver(string channelId, Guid? callId, Decision decision)
    {
        var variables = new List<(string, string)> { (StatusVariable, decision.Status), (ReasonVariable, decision.Reason) };
        if (callId is { } id)
            variables.Add((CallIdVariable, id.ToString()));
        if (decision.Winner is { } winner)
            variables.Add((WinnerVariable, winner));
        if (decision.Args is { Count: > 0 } args)
            variables.Add((ArgsVariable, string.Join(':', args)));
        if (decision.Detail is { } detail)
            variables.Add((DetailVariable, detail));

        var outcomes = await Task.WhenAll(variables.Select(v => ari.SetVariable(channelId, v.Item1, v.Item2)));
        if (outcomes.Any(o => o != AriOutcome.Done))
        {
            logger.LogInformation("Channel {ChannelId} left before its {Status} handover ({Outcome})", channelId, decision.Status, outcomes.First(o => o != AriOutcome.Done));
            return false;
        }

        if (decision.MoveToApp is { } app)
            return await ari.Move(channelId, app, decision.AppArgs) == AriOutcome.Done;

        var target = decision.Target ?? (decision.Status == CallStatus.Success ? options.Value.DefaultTarget : null);
        var outcome = await ari.Continue(channelId, target?.Context, target?.Extension, target?.Priority);
        if (outcome != AriOutcome.Done)
            logger.LogInformation("Channel {ChannelId} could not continue ({Outcome})", channelId, outcome);
        return outcome == AriOutcome.Done;
    }
}

/// <summary>How a call leaves the router's app.</summary>
public sealed record Decision(
    string Status,
    string Reason,
    string? Winner = null,
    IReadOnlyList<string>? Args = null,
    string? Detail = null,
    DialplanTarget? Target = null,
    string? MoveToApp = null,
    IReadOnlyList<string>? AppArgs = null,
    DateTimeOffset? ClaimedAt = null);
