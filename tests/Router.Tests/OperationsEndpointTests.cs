using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using CallRouter.Operations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// The operations endpoint on a bare host (no broker): Kestrel, the OpenTelemetry Prometheus exporter over this host's
/// meters only, and the health check probes, with the names and JSON the README documents.
/// </summary>
public sealed class OperationsEndpointTests
{
    private const string MeterName = "Test.Operations";
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task Metrics_are_exported_with_the_readme_naming_counters_total_seconds_histograms_and_gauges()
    {
        await using var host = await Start();
        var meter = host.Services.GetRequiredService<IMeterFactory>().Create(MeterName);
        var calls = meter.CreateCounter<long>("test.operations.calls", "{call}", "Calls");
        var latency = meter.CreateHistogram("test.operations.latency", "s", "Latency",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.5, 1, 2.5] });
        var open = meter.CreateUpDownCounter<int>("test.operations.open", "{call}", "Open");
        meter.CreateObservableGauge("test.operations.live", () => new Measurement<int>(1, new KeyValuePair<string, object?>("app", "say \"hi\"")), "{app}", "Live");
        calls.Add(2, new("status", "SUCCESS"), new("reason", "claimed"));
        calls.Add(3, new("reason", "claimed"), new("status", "SUCCESS"));
        calls.Add(1, new("status", "TIMEOUT"), new("reason", "no-claim"));
        foreach (var value in new[] { 0.25, 0.5, 1, 2, 7 })
            latency.Record(value, new KeyValuePair<string, object?>("status", "SUCCESS"));
        open.Add(3);
        open.Add(-1);

        var text = await Http.GetStringAsync(new Uri(Address(host), "/metrics"));
        var scrape = Infrastructure.Scrape.Parse(text);

        Assert.Contains("# TYPE test_operations_calls_total counter", text);
        // Labels sorted by name whatever order they were recorded in, as the README says.
        Assert.Contains("\ntest_operations_calls_total{reason=\"claimed\",status=\"SUCCESS\"} 5\n", text);
        Assert.Contains("\ntest_operations_latency_seconds_bucket{status=\"SUCCESS\",le=\"0.5\"} 2\n", text);
        Assert.Contains("# TYPE test_operations_latency_seconds histogram", text);
        Assert.Contains("# TYPE test_operations_open gauge", text);
        Assert.Contains("# TYPE test_operations_live gauge", text);
        Assert.Equal(5, scrape["test_operations_calls_total{reason=\"claimed\",status=\"SUCCESS\"}"]);
        Assert.Equal(1, scrape["test_operations_calls_total{reason=\"no-claim\",status=\"TIMEOUT\"}"]);
        Assert.Equal(2, scrape["test_operations_latency_seconds_bucket{status=\"SUCCESS\",le=\"0.5\"}"]);
        Assert.Equal(3, scrape["test_operations_latency_seconds_bucket{status=\"SUCCESS\",le=\"1\"}"]);
        Assert.Equal(4, scrape["test_operations_latency_seconds_bucket{status=\"SUCCESS\",le=\"2.5\"}"]);
        Assert.Equal(5, scrape["test_operations_latency_seconds_bucket{status=\"SUCCESS\",le=\"+Inf\"}"]);
        Assert.Equal(10.75, scrape["test_operations_latency_seconds_sum{status=\"SUCCESS\"}"]);
        Assert.Equal(5, scrape["test_operations_latency_seconds_count{status=\"SUCCESS\"}"]);
        Assert.Equal(2, scrape["test_operations_open"]);
        Assert.Equal(1, scrape["test_operations_live{app=\"say \\\"hi\\\"\"}"]);
        // Only what the service records: no target_info, no scope labels, no other meter.
        Assert.DoesNotContain("target_info", text);
        Assert.DoesNotContain("otel_scope", text);
        Assert.Equal(["test_operations_calls_total", "test_operations_latency_seconds_bucket", "test_operations_latency_seconds_count",
            "test_operations_latency_seconds_sum", "test_operations_live", "test_operations_open"],
            Status.PrometheusText.Parse(text).Select(s => s.Name).Distinct().Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Each_host_exports_only_its_own_meter_even_with_the_same_name_in_one_process()
    {
        await using var first = await Start();
        await using var second = await Start();
        first.Services.GetRequiredService<IMeterFactory>().Create(MeterName).CreateCounter<long>("test.operations.calls").Add(1);
        second.Services.GetRequiredService<IMeterFactory>().Create(MeterName).CreateCounter<long>("test.operations.calls").Add(5);
        using var stray = new Meter(MeterName);
        stray.CreateCounter<long>("test.operations.calls").Add(100);

        Assert.Equal(1, Infrastructure.Scrape.Parse(await Http.GetStringAsync(new Uri(Address(first), "/metrics")))["test_operations_calls_total"]);
        Assert.Equal(5, Infrastructure.Scrape.Parse(await Http.GetStringAsync(new Uri(Address(second), "/metrics")))["test_operations_calls_total"]);
    }

    [Fact]
    public async Task Ready_follows_the_ready_checks_and_live_answers_whatever_they_say()
    {
        var problem = new StrongBox<string?>(null);
        await using var host = await Start(checks: b => b
            .AddCheck("broker", () => problem.Value is { } p ? HealthCheckResult.Unhealthy(p) : HealthCheckResult.Healthy(), [OperationsExtensions.ReadyTag])
            .AddCheck("ari", () => HealthCheckResult.Healthy(), [OperationsExtensions.ReadyTag]));

        var (status, body) = await Get(host, "/health/ready");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"status":"ready","down":[],"checks":{"broker":"up","ari":"up"}}""", body);

        problem.Value = "RabbitMQ connection is not open";
        (status, body) = await Get(host, "/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("""{"status":"not-ready","down":["broker"],"checks":{"broker":"RabbitMQ connection is not open","ari":"up"}}""", body);

        (status, body) = await Get(host, "/health/live");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("live", JsonDocument.Parse(body).RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Probes_and_scrapes_share_one_kept_alive_connection()
    {
        await using var host = await Start();
        var connections = 0;
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                Interlocked.Increment(ref connections);
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        using var client = new HttpClient(handler);
        foreach (var path in new[] { "/metrics", "/health/live", "/health/ready", "/metrics" })
        {
            using var response = await client.GetAsync(new Uri(Address(host), path));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.NotEqual(true, response.Headers.ConnectionClose);
            await response.Content.ReadAsStringAsync();
        }
        Assert.Equal(1, connections);
    }

    [Fact]
    public async Task A_port_that_cannot_be_bound_is_logged_and_the_host_runs_on_without_the_endpoint()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var logs = new LogCapture();

        await using var host = await Start($"http://127.0.0.1:{port}", logs: logs);

        Assert.Empty(host.Services.GetRequiredService<OperationsEndpoint>().Addresses);
        Assert.Contains(logs.Entries, e => e.Level == LogLevel.Error
            && e.Message.Contains($"could not listen on http://127.0.0.1:{port}") && e.Message.Contains("Http__Urls"));
        // The host went on: the hosted services after the endpoint started.
        Assert.True(host.Services.GetRequiredService<Marker>().Started);
    }

    [Fact]
    public async Task Http_enabled_false_turns_the_endpoint_off()
    {
        await using var host = await Start(enabled: false);
        Assert.Empty(host.Services.GetRequiredService<OperationsEndpoint>().Addresses);
    }

    private static Uri Address(IHost host) => host.Services.GetRequiredService<OperationsEndpoint>().Addresses.Single();

    private static async Task<(HttpStatusCode Status, string Body)> Get(IHost host, string path)
    {
        using var response = await Http.GetAsync(new Uri(Address(host), path));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task<AsyncHost> Start(string urls = "http://127.0.0.1:0", bool enabled = true,
        Action<IHealthChecksBuilder>? checks = null, LogCapture? logs = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection([new("Http:Urls", urls), new("Http:Enabled", enabled ? "true" : "false")]);
        if (logs is not null)
            builder.Logging.AddProvider(logs);
        var healthChecks = builder.AddOperationsEndpoint(MeterName, "http://127.0.0.1:0");
        checks?.Invoke(healthChecks);
        builder.Services.AddSingleton<Marker>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Marker>());
        var host = builder.Build();
        await host.StartAsync();
        return new AsyncHost(host);
    }

    /// <summary>A hosted service registered after the endpoint: started means the host went on past it.</summary>
    private sealed class Marker : IHostedService
    {
        public bool Started { get; private set; }

        public Task StartAsync(CancellationToken cancellationToken)
        {
            Started = true;
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>A started host, stopped and disposed at the end of the test.</summary>
    private sealed class AsyncHost(IHost host) : IHost, IAsyncDisposable
    {
        public IServiceProvider Services => host.Services;

        public Task StartAsync(CancellationToken cancellationToken = default) => host.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken = default) => host.StopAsync(cancellationToken);

        public void Dispose() => host.Dispose();

        public async ValueTask DisposeAsync()
        {
            await host.StopAsync();
            host.Dispose();
        }
    }

    /// <summary>Every log entry of the host, for asserting what it said.</summary>
    private sealed class LogCapture : ILoggerProvider
    {
        public ConcurrentQueue<(LogLevel Level, string Message)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(LogCapture capture) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                capture.Entries.Enqueue((logLevel, formatter(state, exception)));
        }
    }
}
