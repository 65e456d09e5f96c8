using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.Operations;

/// <summary>
/// A small Kestrel server beside the service: GET /metrics (Prometheus text), /health/live (the process answers) and
/// /health/ready (200 when every readiness check passes, else 503 with a JSON body naming what is down).
/// </summary>
public sealed class OperationsEndpoint(
    PrometheusExporter exporter,
    IEnumerable<IReadinessCheck> checks,
    IOptions<OperationsOptions> options,
    ILogger<OperationsEndpoint> logger) : IHostedService, IAsyncDisposable
{
    private readonly IReadinessCheck[] _checks = [.. checks];
    private WebApplication? _app;

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

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(OperationsEndpoint).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        var app = builder.Build();
        app.Run(Handle);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // Routing calls matters more than being scraped: run on without the endpoint, loudly.
            logger.LogError(exception, "Operations endpoint could not listen on {Urls}; metrics and health are unavailable (set Http__Urls)", string.Join(';', urls));
            await app.DisposeAsync();
            return;
        }
        _app = app;
        Addresses = [.. app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Select(a => new Uri(a))];
        logger.LogInformation("Operations endpoint on {Addresses}", string.Join(", ", Addresses));
    }

    private async Task Handle(HttpContext http)
    {
        if (!HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method))
        {
            http.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }
        switch (http.Request.Path.Value)
        {
            case "/metrics":
                http.Response.ContentType = PrometheusExporter.ContentType;
                await http.Response.WriteAsync(exporter.Scrape());
                break;
            case "/health/live":
                await Json(http, StatusCodes.Status200OK, new Dictionary<string, object> { ["status"] = "live" });
                break;
            case "/health/ready":
                var results = _checks.Select(c => (c.Name, Problem: c.Problem())).ToList();
                var down = results.Where(r => r.Problem is not null).Select(r => r.Name).ToList();
                await Json(http, down.Count == 0 ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, new Dictionary<string, object>
                {
                    ["status"] = down.Count == 0 ? "ready" : "not-ready",
                    ["down"] = down,
                    ["checks"] = results.ToDictionary(r => r.Name, r => r.Problem ?? "up"),
                });
                break;
            default:
                http.Response.StatusCode = StatusCodes.Status404NotFound;
                break;
        }
    }

    private static async Task Json(HttpContext http, int status, Dictionary<string, object> body)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(JsonSerializer.Serialize(body));
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
            await _app.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
            await _app.DisposeAsync();
        _app = null;
    }
}
