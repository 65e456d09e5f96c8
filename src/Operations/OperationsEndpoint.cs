using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.Operations;

/// <summary>
/// A small HTTP/1.1 server beside the service: GET /metrics (Prometheus text), /health/live (the process answers) and
/// /health/ready (200 when every readiness check passes, else 503 with a JSON body naming what is down). One request
/// per connection; it serves scrapers and probes, not browsers, so it stays a few dozen lines on a TcpListener instead of
/// a second web host (Kestrel) in a process whose memory and CPU belong to calls.
/// </summary>
public sealed class OperationsEndpoint(
    PrometheusExporter exporter,
    IEnumerable<IReadinessCheck> checks,
    IOptions<OperationsOptions> options,
    ILogger<OperationsEndpoint> logger) : IHostedService, IAsyncDisposable
{
    private const int MaxRequestBytes = 8192;
    private readonly IReadinessCheck[] _checks = [.. checks];
    private readonly List<TcpListener> _listeners = [];
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>The addresses actually bound (port 0 resolved); empty when the endpoint is off or could not bind.</summary>
    public IReadOnlyList<Uri> Addresses { get; private set; } = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var urls = options.Value.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (!options.Value.Enabled || urls.Length == 0)
        {
            logger.LogInformation("Operations endpoint (metrics, health) is off");
            return Task.CompletedTask;
        }
        try
        {
            foreach (var url in urls)
            {
                var uri = new Uri(url);
                var listener = new TcpListener(Address(uri.Host), uri.Port);
                listener.Start();
                _listeners.Add(listener);
            }
        }
        catch (Exception exception) when (exception is SocketException or UriFormatException)
        {
            // Routing calls matters more than being scraped: run on without the endpoint, loudly.
            logger.LogError(exception, "Operations endpoint could not listen on {Urls}; metrics and health are unavailable (set Http__Urls)", string.Join(';', urls));
            StopListening();
            return Task.CompletedTask;
        }
        Addresses = [.. _listeners.Select(l => (IPEndPoint)l.LocalEndpoint).Select(e => new Uri($"http://{Host(e.Address)}:{e.Port}/"))];
        foreach (var listener in _listeners)
            _ = Accept(listener);
        logger.LogInformation("Operations endpoint on {Addresses}", string.Join(", ", Addresses));
        return Task.CompletedTask;
    }

    private static IPAddress Address(string host) => host switch
    {
        "0.0.0.0" or "+" or "*" => IPAddress.Any,
        "localhost" => IPAddress.Loopback,
        _ => IPAddress.Parse(host.Trim('[', ']')),
    };

    private static string Host(IPAddress address) =>
        address.Equals(IPAddress.Any) ? "localhost" : address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();

    private async Task Accept(TcpListener listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception exception) when (exception is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Serve(client);
        }
    }

    private async Task Serve(TcpClient client)
    {
        using var _ = client;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            var stream = client.GetStream();
            var (method, path) = await ReadRequestLine(stream, timeout.Token);
            var (status, contentType, body) = Respond(method, path);
            var payload = Encoding.UTF8.GetBytes(body);
            var head = $"HTTP/1.1 {status} {Reason(status)}\r\nContent-Type: {contentType}\r\nContent-Length: {payload.Length}\r\nConnection: close\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head), timeout.Token);
            if (method != "HEAD")
                await stream.WriteAsync(payload, timeout.Token);
        }
        catch (Exception exception) when (exception is IOException or OperationCanceledException or SocketException or InvalidDataException)
        {
            logger.LogDebug("Operations request dropped: {Error}", exception.Message);
        }
    }

    /// <summary>Reads the request head (up to the blank line) and returns its method and path.</summary>
    private static async Task<(string Method, string Path)> ReadRequestLine(NetworkStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxRequestBytes];
        var length = 0;
        while (length < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken);
            if (read == 0)
                break;
            length += read;
            if (buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0)
                break;
        }
        var head = Encoding.ASCII.GetString(buffer, 0, length);
        var parts = head[..Math.Max(0, head.IndexOf("\r\n", StringComparison.Ordinal))].Split(' ');
        if (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
            throw new InvalidDataException("not an HTTP/1.x request");
        return (parts[0], parts[1].Split('?')[0]);
    }

    private (int Status, string ContentType, string Body) Respond(string method, string path)
    {
        if (method is not ("GET" or "HEAD"))
            return (405, "text/plain", "method not allowed\n");
        switch (path)
        {
            case "/metrics":
                return (200, PrometheusExporter.ContentType, exporter.Scrape());
            case "/health/live":
                return (200, "application/json", JsonSerializer.Serialize(new Dictionary<string, object> { ["status"] = "live" }));
            case "/health/ready":
                var results = _checks.Select(c => (c.Name, Problem: c.Problem())).ToList();
                var down = results.Where(r => r.Problem is not null).Select(r => r.Name).ToList();
                return (down.Count == 0 ? 200 : 503, "application/json", JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["status"] = down.Count == 0 ? "ready" : "not-ready",
                    ["down"] = down,
                    ["checks"] = results.ToDictionary(r => r.Name, r => r.Problem ?? "up"),
                }));
            default:
                return (404, "text/plain", "not found\n");
        }
    }

    private static string Reason(int status) => status switch
    {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };

    private void StopListening()
    {
        foreach (var listener in _listeners)
            listener.Stop();
        _listeners.Clear();
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping.Cancel();
        StopListening();
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        StopListening();
        return ValueTask.CompletedTask;
    }
}
