using Polly;
using Polly.Retry;

namespace CallRouter.Common;

/// <summary>
/// A named Polly pipeline for what must not be lost (a CDR batch, the schema, a call record, the CDR writer's broker
/// connection): retried for as long as it takes, each wait one <c>step</c> longer than the last up to <c>ceiling</c>,
/// until the caller's cancellation token says stop.
/// </summary>
public static class RetryForever
{
    public static ResiliencePipeline Pipeline(string name, TimeSpan step, TimeSpan ceiling, Func<Exception, bool> handles,
        Action<OnRetryArguments<object>> onRetry) =>
        new ResiliencePipelineBuilder { Name = name }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } exception
                    && !args.Context.CancellationToken.IsCancellationRequested && handles(exception)),
                MaxRetryAttempts = int.MaxValue,
                Delay = step,
                MaxDelay = ceiling,
                BackoffType = DelayBackoffType.Linear,
                OnRetry = args =>
                {
                    onRetry(args);
                    return default;
                },
            })
            .Build();
}
