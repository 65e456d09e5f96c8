using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CallRouter.Operations;

/// <summary>Wires the operations endpoint and its exporter for one service.</summary>
public static class OperationsExtensions
{
    /// <summary>
    /// Exports the meter <paramref name="meterName"/> of this host's meter factory (so several hosts in one process,
    /// as in the tests, each export only their own) on the "Http" section's URLs, <paramref name="defaultUrls"/> if unset.
    /// Readiness checks are the <see cref="IReadinessCheck"/> services.
    /// </summary>
    public static IHostApplicationBuilder AddOperationsEndpoint(this IHostApplicationBuilder builder, string meterName, string defaultUrls)
    {
        builder.Services.AddMetrics();
        builder.Services.AddOptions<OperationsOptions>()
            .Configure(o => o.Urls = defaultUrls)
            .BindConfiguration(OperationsOptions.Section);
        builder.Services.AddSingleton(sp =>
        {
            var factory = sp.GetRequiredService<IMeterFactory>();
            return new PrometheusExporter(meter => meter.Name == meterName && ReferenceEquals(meter.Scope, factory));
        });
        builder.Services.AddSingleton<OperationsEndpoint>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OperationsEndpoint>());
        return builder;
    }
}
