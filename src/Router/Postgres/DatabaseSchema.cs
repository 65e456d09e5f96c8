using Microsoft.Extensions.Logging;
using Npgsql;

namespace CallRouter.Router.Postgres;

/// <summary>Applies the migrations once per process, the first time something needs the database; retried after a failure.</summary>
public sealed class DatabaseSchema(NpgsqlDataSource database, ILogger<DatabaseSchema> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _ready;

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
    public async Task EnsureWithRetry(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await Ensure(cancellationToken);
                return;
            }
            catch (Exception exception) when (exception is NpgsqlException or TimeoutException && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("PostgreSQL not ready (attempt {Attempt}): {Error}", attempt, exception.Message);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(attempt, 5)), cancellationToken);
            }
        }
    }
}
