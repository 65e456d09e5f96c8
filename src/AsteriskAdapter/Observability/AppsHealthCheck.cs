using CallRouter.AsteriskAdapter.Calls;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CallRouter.AsteriskAdapter.Observability;

/// <summary>Ready once the adapter knows which apps are live (/health/ready's "apps"): one AppWarmup of heartbeats after (re)connecting.</summary>
public sealed class AppsHealthCheck(LiveApps live) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(live.Knows
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy(live.KnownFrom is { } from
                ? $"learning which apps are live from their heartbeats (until {from:HH:mm:ss.fff} UTC)"
                : "not hearing heartbeats yet"));
}
