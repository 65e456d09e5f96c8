using Microsoft.Extensions.Logging;
using Npgsql;
using Polly;
using Polly.Retry;

namespace CallRouter.Router.Postgres;

/// <summary>Applies the migrations once per process, the first time something needs the database; retried after a failure.</summary>
public sealed class DatabaseSchema(NpgsqlDataSource database, ILogger<DatabaseSchema> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _ready;

    // "schema-until-ready": PostgreSQL not up yet: 1 s longer each time up to 5 s, until it answers.
    private readonly ResiliencePipeline _untilReady = new ResiliencePipelineBuilder { Name = "schema-until-ready" }
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is NpgsqlException or TimeoutException
                && !args.Context.CancellationToken.IsCancellationRequested),
            MaxRetryAttempts = int.MaxValue,
            Delay = TimeSpan.FromSeconds(1),
            MaxDelay = TimeSpan.FromSeconds(5),
            BackoffType = DelayBackoffType.Linear,
            OnRetry = args =>
            {
                logger.LogWarning("PostgreSQL not ready (attempt {Attempt}): {Error}", args.AttemptNumber + 1, args.Outcome.Exception?.Message);
                return default;
            },
        })
        .Build();

    public async Task Ensure(CancellationToken cancellationToken)
    {
        if (_ready)
            return;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (!_ready)
            {
                await Migrations.Apply(database, logger, cancellationToken);
                _ready = true;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Keeps trying until the schema is in place (PostgreSQL may start after us).</summary>
    public async Task EnsureWithRetry(CancellationToken cancellationToken) =>
        await _untilReady.ExecuteAsync(async token => await Ensure(token), cancellationToken);
}
