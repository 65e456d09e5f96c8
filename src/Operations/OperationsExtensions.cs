using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;

namespace CallRouter.Operations;

/// <summary>Wires the operations endpoint, its Prometheus exporter and its health checks for one service.</summary>
public static class OperationsExtensions
{
    /// <summary>The tag of the health checks /health/ready runs; /health/live runs none (the process answers).</summary>
    public const string ReadyTag = "ready";

    /// <summary>The name OpenTelemetry's <see cref="IMetricsListener"/> registers under.</summary>
    private const string OpenTelemetryListener = "OpenTelemetry";

    /// <summary>
    /// Exports the meter <paramref name="meterName"/> of this host's meter factory (so several hosts in one process,
    /// as in the tests, each export only their own) on the "Http" section's URLs, <paramref name="defaultUrls"/> if unset.
    /// Returns the health checks builder: add the checks /health/ready waits for with <see cref="ReadyTag"/>.
    /// </summary>
    public static IHealthChecksBuilder AddOperationsEndpoint(this IHostApplicationBuilder builder, string meterName, string defaultUrls)
    {
        builder.Services.AddOptions<OperationsOptions>()
            .Configure(o => o.Urls = defaultUrls)
            .BindConfiguration(OperationsOptions.Section);
        // OpenTelemetry is this host's metrics listener, enabled below for the meter of this host's own factory only (Local,
        // not AddMeter, which listens process-wide): several hosts in one process, as in the tests, each export their own.
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddPrometheusExporter(o =>
        {
            // Every scrape reads the instruments now (the default caches 300 ms); names and labels as the README lists them.
            o.ScrapeResponseCacheDurationMilliseconds = 0;
            o.ScopeInfoEnabled = false;
            o.TargetInfoEnabled = false;
        }));
        builder.Metrics.EnableMetrics(meterName, scopes: MeterScope.Local, listenerName: OpenTelemetryListener);
        builder.Services.AddSingleton<OperationsEndpoint>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OperationsEndpoint>());
        return builder.Services.AddHealthChecks();
    }
}
