using CallRouter.AsteriskAdapter.Broker;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CallRouter.AsteriskAdapter.Observability;

/// <summary>Ready while the adapter's RabbitMQ connection is open (/health/ready's "broker").</summary>
public sealed class BrokerHealthCheck(AdapterBroker broker) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(broker.IsConnected ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("RabbitMQ connection is not open"));
}
