using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Serialization;
using Dapper;
using Npgsql;

namespace CallRouter.Status;

/// <summary>One /metrics endpoint as read: its samples, or why it could not be read.</summary>
public sealed record MetricsReading(Uri Url, List<Sample>? Samples, string? Error);

/// <summary>A queue as the RabbitMQ management API reports it.</summary>
public sealed record QueueInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("messages")] long? Messages,
    [property: JsonPropertyName("consumers")] int? Consumers);

/// <summary>A row of the CDR table (call_records), the columns the status shows.</summary>
public sealed class CallRecord
{
    public Guid CallId { get; set; }
    public string? Node { get; set; }
    public string? CallerNumber { get; set; }
    public string? Extension { get; set; }
    public DateTime? BroadcastAt { get; set; }
    public int? AudienceSize { get; set; }
    public int? Claims { get; set; }
    public string? Winner { get; set; }
    public double? ClaimLatencyMs { get; set; }
    public double? DecisionLatencyMs { get; set; }
    public string? Status { get; set; }
    public string? Reason { get; set; }
}

/// <summary>Everything one refresh shows. A source that could not be read has its error instead of data.</summary>
public sealed record Snapshot(
    DateTimeOffset At,
    IReadOnlyList<MetricsReading> Routers,
    IReadOnlyList<MetricsReading> Adapters,
    IReadOnlyList<QueueInfo>? Queues,
    string? QueuesError,
    IReadOnlyList<CallRecord>? RecentCalls,
    string? RecentCallsError);

/// <summary>Reads what a deployment exposes: router and adapter /metrics, the RabbitMQ management API, the CDR table.</summary>
public sealed class StatusReader(StatusOptions options) : IDisposable
{
    public const int RecentCallCount = 15;

    private const string RecentCallsSql = """
        select call_id, node, caller_number, extension, broadcast_at, audience_size, claims, winner,
               claim_latency_ms, decision_latency_ms, status, reason
        from call_records
        order by broadcast_at desc
        limit @limit
        """;

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(3) };

    static StatusReader() => DefaultTypeMap.MatchNamesWithUnderscores = true;

    public async Task<Snapshot> Read(CancellationToken cancellationToken)
    {
        var routers = Task.WhenAll(options.Routers.Select(url => ReadMetrics(url, cancellationToken)));
        var adapters = Task.WhenAll(options.Adapters.Select(url => ReadMetrics(url, cancellationToken)));
        var queues = ReadQueues(cancellationToken);
        var calls = ReadRecentCalls(cancellationToken);
        return new Snapshot(DateTimeOffset.Now, await routers, await adapters, (await queues).Queues, (await queues).Error,
            (await calls).Calls, (await calls).Error);
    }

    private async Task<MetricsReading> ReadMetrics(Uri url, CancellationToken cancellationToken)
    {
        try
        {
            var text = await _http.GetStringAsync(new Uri(url, "metrics"), cancellationToken);
            return new MetricsReading(url, PrometheusText.Parse(text), null);
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or FormatException && !cancellationToken.IsCancellationRequested)
        {
            return new MetricsReading(url, null, Unavailable(exception));
        }
    }

    /// <summary>
    /// Queue depths from /api/queues (refreshed at the broker's statistics interval, 5 s by default) and consumers from
    /// /api/consumers (current as soon as a consumer starts or stops).
    /// </summary>
    private async Task<(IReadOnlyList<QueueInfo>? Queues, string? Error)> ReadQueues(CancellationToken cancellationToken)
    {
        try
        {
            var vhost = Uri.EscapeDataString(options.VirtualHost);
            var queues = await Management<List<QueueInfo>>($"queues/{vhost}?columns=name,messages", cancellationToken);
            var consumers = (await Management<List<ConsumerInfo>>($"consumers/{vhost}", cancellationToken))
                .GroupBy(c => c.Queue.Name).ToDictionary(g => g.Key, g => g.Count());
            return (queues.Select(q => q with { Consumers = consumers.GetValueOrDefault(q.Name) }).ToList(), null);
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException && !cancellationToken.IsCancellationRequested)
        {
            return (null, Unavailable(exception));
        }
    }

    private async Task<T> Management<T>(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(options.Management, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.User}:{options.Password}")));
        using var response = await _http.SendAsync(request, cancellationToken);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<T>(cancellationToken))!;
    }

    private sealed record ConsumerInfo([property: JsonPropertyName("queue")] QueueName Queue);

    private sealed record QueueName([property: JsonPropertyName("name")] string Name);

    private async Task<(IReadOnlyList<CallRecord>? Calls, string? Error)> ReadRecentCalls(CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(options.PostgresConnectionString))
            return (null, "not configured (set Postgres__ConnectionString)");
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(options.PostgresConnectionString);
            if (!options.PostgresConnectionString.Contains("timeout", StringComparison.OrdinalIgnoreCase))
                builder.Timeout = 3;
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            var rows = await connection.QueryAsync<CallRecord>(new CommandDefinition(RecentCallsSql, new { limit = RecentCallCount }, cancellationToken: cancellationToken));
            return (rows.ToList(), null);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Any database problem (unreachable, no such table, bad connection string) shows as one line, never a crash.
            return (null, Unavailable(exception));
        }
    }

    private static string Unavailable(Exception exception) => $"unavailable: {exception.GetBaseException().Message}";

    public void Dispose() => _http.Dispose();
}
