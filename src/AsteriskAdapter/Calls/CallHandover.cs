using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Observability;
using CallRouter.Messages;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// Ends a call's time in the router's Stasis app: sets the ROUTER_* variables, then continues or moves the channel.
/// A handover that ARI keeps failing (5xx, timeouts, resets; each request already retried) becomes FAILED/ari-error
/// at the next priority, and that fallback is retried until the channel has left the app or is gone.
/// </summary>
public sealed class CallHandover
{
    public const string StatusVariable = "ROUTER_STATUS";
    public const string ReasonVariable = "ROUTER_REASON";
    public const string WinnerVariable = "ROUTER_WINNER";
    public const string ArgsVariable = "ROUTER_ARGS";
    public const string CallIdVariable = "ROUTER_CALL_ID";
    public const string DetailVariable = "ROUTER_DETAIL";

    private const int MaxDetailLength = 200;

    private readonly AriClient _ari;
    private readonly CallRecorder _recorder;
    private readonly AdapterMetrics _metrics;
    private readonly AdapterOptions _options;
    private readonly ILogger<CallHandover> _logger;
    private readonly CancellationToken _stopping;
    private readonly ResiliencePipeline<bool> _attempt;
    private readonly ResiliencePipeline<bool> _untilLeft;

    public CallHandover(AriClient ari, CallRecorder recorder, AdapterMetrics metrics, IOptions<AdapterOptions> options,
        IHostApplicationLifetime lifetime, ILogger<CallHandover> logger)
    {
        (_ari, _recorder, _metrics, _options, _logger, _stopping) = (ari, recorder, metrics, options.Value, logger, lifetime.ApplicationStopping);
        var budget = new TimeoutStrategyOptions { Timeout = _options.HandoverTimeout };
        // "handover": one decision's variables and continue or move, their own retries included, within the budget.
        _attempt = new ResiliencePipelineBuilder<bool> { Name = "handover" }.AddTimeout(budget).Build();
        // "handover-until-left": the ari-error fallback, tried again and again: a call must never stay in the app.
        _untilLeft = new ResiliencePipelineBuilder<bool> { Name = "handover-until-left" }
            .AddRetry(new RetryStrategyOptions<bool>
            {
                ShouldHandle = new PredicateBuilder<bool>().Handle<Exception>(IsAriFailure),
                MaxRetryAttempts = int.MaxValue,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(5),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                OnRetry = args =>
                {
                    if (args.AttemptNumber == 0)
                        _metrics.HandoverStuck();
                    _logger.LogError("A channel's FAILED/ari-error fallback failed too (attempt {Attempt}); retrying until it leaves: {Error}",
                        args.AttemptNumber + 1, args.Outcome.Exception?.Message);
                    return default;
                },
            })
            .AddTimeout(budget)
            .Build();
    }

    /// <summary>
    /// Hands the channel over as the decision says, or as FAILED/ari-error if ARI keeps failing. <paramref name="moved"/>
    /// tells whether a move whose answer never came went through after all (its StasisEnd arrived).
    /// </summary>
    public async Task<HandoverResult> Execute(string channelId, Guid? callId, Decision decision, Func<bool>? moved = null)
    {
        _recorder.Deciding(channelId, decision);
        Exception failure;
        try
        {
            var done = await _attempt.ExecuteAsync(async token => await HandOver(channelId, callId, decision, token), _stopping);
            return Finish(channelId, decision, done);
        }
        catch (Exception exception) when (IsAriFailure(exception))
        {
            failure = exception;
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            return new HandoverResult(false, decision);
        }

        if (decision.MoveToApp is not null && moved?.Invoke() == true)
            return Finish(channelId, decision, true);

        var what = failure is TimeoutRejectedException ? "ARI did not answer in time" : failure.Message;
        var detail = $"{decision.Status}/{decision.Reason} handover failed: {what}";
        if (detail.Length > MaxDetailLength)
            detail = detail[..MaxDetailLength];
        _logger.LogWarning("Channel {ChannelId}: {Status}/{Reason} handover failed ({Error}); falling back as FAILED/ari-error",
            channelId, decision.Status, decision.Reason, what);
        var fallback = new Decision(CallStatus.Failed, DispositionReason.AriError, decision.Winner, decision.Args, detail, ClaimedAt: decision.ClaimedAt);
        _recorder.Deciding(channelId, fallback);
        try
        {
            var done = await _untilLeft.ExecuteAsync(async token => await HandOver(channelId, callId, fallback, token), _stopping);
            return Finish(channelId, fallback, done);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            return new HandoverResult(false, fallback);
        }
    }

    private HandoverResult Finish(string channelId, Decision decision, bool handedOver)
    {
        if (handedOver)
            _recorder.HandedOver(channelId);
        return new HandoverResult(handedOver, decision);
    }

    /// <summary>ARI answered 5xx, reset the connection or did not answer in time (after the request's own retries).</summary>
    private bool IsAriFailure(Exception exception) =>
        exception is HttpRequestException or TimeoutRejectedException
        || (exception is OperationCanceledException && !_stopping.IsCancellationRequested);

    /// <summary>True when the channel left the app (or a move was taken); false when it was already gone.</summary>
    private async Task<bool> HandOver(string channelId, Guid? callId, Decision decision, CancellationToken cancellationToken)
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

        var outcomes = await _ari.SetVariables(channelId, variables, cancellationToken);
        if (outcomes.Any(o => o != AriOutcome.Done))
        {
            _logger.LogInformation("Channel {ChannelId} left before its {Status} handover ({Outcome})", channelId, decision.Status, outcomes.First(o => o != AriOutcome.Done));
            return false;
        }

        if (decision.MoveToApp is { } app)
            return await _ari.Move(channelId, app, decision.AppArgs, cancellationToken) == AriOutcome.Done;

        var target = decision.Target ?? (decision.Status == CallStatus.Success ? _options.DefaultTarget : null);
        var outcome = await _ari.Continue(channelId, target?.Context, target?.Extension, target?.Priority, cancellationToken);
        // 409 after a continue whose answer was lost: the first one went through, the channel is in the dialplan.
        if (outcome == AriOutcome.NotInStasis)
            return true;
        if (outcome != AriOutcome.Done)
            _logger.LogInformation("Channel {ChannelId} could not continue ({Outcome})", channelId, outcome);
        return outcome == AriOutcome.Done;
    }
}

/// <summary>What a handover came to: whether the channel left the app alive, and the decision it left with.</summary>
public readonly record struct HandoverResult(bool HandedOver, Decision Final);

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
