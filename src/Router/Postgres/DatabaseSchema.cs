using Microsoft.Extensions.Logging;
using Npgsql;
using CallRouter.Common;
using Polly;

namespace CallRouter.Router.Postgres;

/// <summary>Applies the migrations once per process, the first time something needs the database; retried after a failure.</summary>
public sealed class DatabaseSchema(NpgsqlDataSource database, ILogger<DatabaseSchema> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _ready;

    // "schema-until-ready": PostgreSQL not up yet: 1 s longer each time up to 5 s, until it answers.
    private readonly ResiliencePipeline _untilReady = RetryForever.Pipeline("schema-until-ready", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5),
        exception => exception is NpgsqlException or TimeoutException,
        args => logger.LogWarning("PostgreSQL not ready (attempt {Attempt}): {Error}", args.AttemptNumber + 1, args.Outcome.Exception?.Message));

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
