using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.Router.Postgres;

/// <summary>
/// With sagas in PostgreSQL: holds the router's start until the schema is in place, then every minute deletes saga
/// rows older than Postgres__SagaMaxAge (a call whose ForgetCall timer was lost, e.g. in a broker crash).
/// </summary>
public sealed class SagaTableJanitor(DatabaseSchema schema, CallSagaStore store, IOptions<PostgresOptions> options, ILogger<SagaTableJanitor> logger)
    : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await schema.EnsureWithRetry(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(1));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var swept = await store.Sweep(options.Value.SagaMaxAge, stoppingToken);
                if (swept > 0)
                    logger.LogWarning("Deleted {Count} saga rows older than {MaxAge}", swept, options.Value.SagaMaxAge);
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                logger.LogWarning("Saga sweep failed: {Error}", exception.Message);
            }
        }
    }
}
