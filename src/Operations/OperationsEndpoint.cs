using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;

namespace CallRouter.Operations;

/// <summary>
/// Kestrel beside the service: GET /metrics (OpenTelemetry's Prometheus exporter), /health/live and /health/ready
/// (ASP.NET Core health checks tagged <see cref="OperationsExtensions.ReadyTag"/>). A web application of its own, started
/// by the service's host, so a port that cannot be bound costs the endpoint, never the calls.
/// </summary>
public sealed class OperationsEndpoint(
    IServiceProvider services,
    IOptions<OperationsOptions> options,
    ILoggerFactory loggers,
    ILogger<OperationsEndpoint> logger) : IHostedService, IAsyncDisposable
{
    private WebApplication? _web;

    /// <summary>The addresses actually bound (port 0 resolved); empty when the endpoint is off or could not bind.</summary>
    public IReadOnlyList<Uri> Addresses { get; private set; } = [];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var urls = options.Value.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (!options.Value.Enabled || urls.Length == 0)
        {
            logger.LogInformation("Operations endpoint (metrics, health) is off");
            return;
        }
        var web = Build(urls);
        try
        {
            await web.StartAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is IOException or UriFormatException or FormatException or InvalidOperationException)
        {
            // Routing calls matters more than being scraped: run on without the endpoint, loudly.
            logger.LogError(exception, "Operations endpoint could not listen on {Urls}; metrics and health are unavailable (set Http__Urls)", string.Join(';', urls));
            await web.DisposeAsync();
            return;
        }
        _web = web;
        Addresses = [.. web.Urls.Select(a => new Uri(a.Replace("0.0.0.0", "localhost", StringComparison.Ordinal).TrimEnd('/') + "/"))];
        logger.LogInformation("Operations endpoint on {Addresses}", string.Join(", ", Addresses));
    }

    /// <summary>The smallest web application that serves the three paths: Kestrel, routing, the service's own health checks and meters.</summary>
    private WebApplication Build(string[] urls)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().UseUrls(urls);
        builder.Services.AddRoutingCore();
        builder.Services.AddSingleton(loggers);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        // The checks and the exporter live in the service's container, next to what they watch.
        builder.Services.AddSingleton(services.GetRequiredService<HealthCheckService>());
        var web = builder.Build();
        web.MapPrometheusScrapingEndpoint("/metrics", services.GetRequiredService<MeterProvider>(), configureBranchedPipeline: null, optionsName: null);
        web.MapHealthChecks("/health/live", Probe(_ => false, "live"));
        web.MapHealthChecks("/health/ready", Probe(check => check.Tags.Contains(OperationsExtensions.ReadyTag), "ready"));
        return web;
    }

    /// <summary>
    /// A probe over the checks <paramref name="predicate"/> picks, answering 200 {"status":"ready"} or 503
    /// {"status":"not-ready","down":[...],"checks":{name: "up" or the problem}}; degraded counts as down.
    /// </summary>
    private static HealthCheckOptions Probe(Func<HealthCheckRegistration, bool> predicate, string up) => new()
    {
        Predicate = predicate,
        ResultStatusCodes =
        {
            [HealthStatus.Healthy] = StatusCodes.Status200OK,
            [HealthStatus.Degraded] = StatusCodes.Status503ServiceUnavailable,
            [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
        },
        ResponseWriter = (context, report) =>
        {
            var healthy = report.Status == HealthStatus.Healthy;
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["status"] = healthy ? up : "not-" + up,
                ["down"] = report.Entries.Where(e => e.Value.Status != HealthStatus.Healthy).Select(e => e.Key).Order(StringComparer.Ordinal).ToList(),
                ["checks"] = report.Entries.ToDictionary(e => e.Key, e => e.Value.Status == HealthStatus.Healthy
                    ? "up" : e.Value.Description ?? e.Value.Exception?.Message ?? e.Value.Status.ToString()),
            }));
        },
    };

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_web is { } web)
            await web.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_web is { } web)
            await web.DisposeAsync();
        _web = null;
    }
}
