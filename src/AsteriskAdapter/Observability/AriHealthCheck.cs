using CallRouter.AsteriskAdapter.Ari;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CallRouter.AsteriskAdapter.Observability;

/// <summary>Ready while the ARI WebSocket is connected (/health/ready's "ari").</summary>
public sealed class AriHealthCheck(AriEventStream ari) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(ari.IsConnected ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("ARI WebSocket is not connected"));
}
