using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace CallRouter.AsteriskAdapter.Ari;

/// <summary>What an ARI channel operation found.</summary>
public enum AriOutcome
{
    Done,
    ChannelGone,
    NotInStasis,
}

/// <summary>
/// The few ARI REST operations the adapter needs, with Asterisk's status codes mapped to outcomes. Every POST has a
/// short timeout (<see cref="AdapterOptions.AriRequestTimeout"/>); the idempotent ones are retried on 5xx, reset or
/// timeout. What still fails throws <see cref="HttpRequestException"/> or <see cref="TimeoutRejectedException"/>.
/// </summary>
public sealed class AriClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly ResiliencePipeline _idempotent;
    private readonly ResiliencePipeline _once;
    private long _failedAttempts;

    /// <summary>ARI requests that failed (5xx, reset or timeout), retried or not.</summary>
    public long FailedAttempts => Interlocked.Read(ref _failedAttempts);

    public AriClient(IOptions<AdapterOptions> options, ILogger<AriClient> logger)
    {
        var o = options.Value;
        var timeout = new TimeoutStrategyOptions
        {
            Timeout = o.AriRequestTimeout,
            OnTimeout = _ =>
            {
                Interlocked.Increment(ref _failedAttempts);
                return default;
            },
        };
        // "ari-idempotent": a variable set, continue or subscription may be sent twice (a second continue answers 409,
        // which means the channel already left); 4xx answers are outcomes, not failures.
        _idempotent = new ResiliencePipelineBuilder { Name = "ari-idempotent" }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>(IsTransient).Handle<TimeoutRejectedException>(),
                MaxRetryAttempts = Math.Max(0, o.AriRequestRetries),
                Delay = TimeSpan.FromMilliseconds(50),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                OnRetry = args =>
                {
                    logger.LogWarning("ARI request failed (attempt {Attempt}), retrying: {Error}", args.AttemptNumber + 1, args.Outcome.Exception?.Message);
                    return default;
                },
            })
            .AddTimeout(timeout)
            .Build();
        // "ari-once": a move is not repeated (a second move could take the channel from the winner's app).
        _once = new ResiliencePipelineBuilder { Name = "ari-once" }.AddTimeout(timeout).Build();
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = o.MaxAriConnections,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            UseProxy = false,
        };
        // The pipelines time each request out; this only bounds the requests outside them (listing channels at connect).
        _http = new HttpClient(handler) { BaseAddress = o.AriUrl, Timeout = TimeSpan.FromSeconds(10) };
        _http.DefaultRequestHeaders.Authorization = BasicAuthorization(o);
    }

    /// <summary>HTTP Basic credentials for ARI, for REST and for the events WebSocket alike.</summary>
    public static AuthenticationHeaderValue BasicAuthorization(AdapterOptions o) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{o.AriUser}:{o.AriPassword}")));

    public Task<AriOutcome> SetVariable(string channelId, string name, string value, CancellationToken cancellationToken = default) =>
        Post(_idempotent, cancellationToken, $"channels/{Uri.EscapeDataString(channelId)}/variable?variable={Uri.EscapeDataString(name)}&value={Uri.EscapeDataString(value)}");

    /// <summary>Continue in the dialplan: at the target, or at the next priority when there is none.</summary>
    public Task<AriOutcome> Continue(string channelId, string? context, string? extension, int? priority, CancellationToken cancellationToken = default)
    {
        var query = new StringBuilder($"channels/{Uri.EscapeDataString(channelId)}/continue");
        var separator = '?';
        foreach (var (key, value) in new[] { ("context", context), ("extension", extension), ("priority", priority?.ToString()) })
        {
            if (value is null)
                continue;
            query.Append(separator).Append(key).Append('=').Append(Uri.EscapeDataString(value));
            separator = '&';
        }
        return Post(_idempotent, cancellationToken, query.ToString());
    }

    public Task<AriOutcome> Move(string channelId, string app, IReadOnlyList<string>? appArgs, CancellationToken cancellationToken = default)
    {
        var path = $"channels/{Uri.EscapeDataString(channelId)}/move?app={Uri.EscapeDataString(app)}";
        if (appArgs is { Count: > 0 })
            path += "&appArgs=" + Uri.EscapeDataString(string.Join(',', appArgs));
        return Post(_once, cancellationToken, path);
    }

    /// <summary>
    /// Keep hearing about a channel after it leaves Stasis, up to its ChannelDestroyed (for the CDR). ChannelGone when
    /// the channel no longer exists.
    /// </summary>
    public Task<AriOutcome> Subscribe(string app, string channelId) =>
        Post(_idempotent, CancellationToken.None, $"applications/{Uri.EscapeDataString(app)}/subscription?eventSource={Uri.EscapeDataString("channel:" + channelId)}");

    /// <summary>A channel variable's value; null when the channel or the variable does not exist.</summary>
    public async Task<string?> GetVariable(string channelId, string name, CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync(
            $"channels/{Uri.EscapeDataString(channelId)}/variable?variable={Uri.EscapeDataString(name)}", cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound)
            return null;
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken);
        return document.RootElement.TryGetProperty("value", out var value) ? value.GetString() : null;
    }

    /// <summary>Live channels, as ARI lists them.</summary>
    public async Task<IReadOnlyList<AriChannel>> ListChannels(CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync("channels", cancellationToken);
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken);
        return [.. document.RootElement.EnumerateArray().Select(AriChannel.Parse)];
    }

    private Task<AriOutcome> Post(ResiliencePipeline pipeline, CancellationToken cancellationToken, string path) =>
        pipeline.ExecuteAsync(static async (state, token) => await state.Client.PostOnce(state.Path, token), (Client: this, Path: path), cancellationToken).AsTask();

    /// <summary>5xx, or no answer at all (connection refused or reset).</summary>
    private static bool IsTransient(HttpRequestException exception) => exception.StatusCode is null || (int)exception.StatusCode >= 500;

    private async Task<AriOutcome> PostOnce(string path, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsync(path, content: null, cancellationToken);
        }
        catch (HttpRequestException)
        {
            Interlocked.Increment(ref _failedAttempts);
            throw;
        }
        using var _ = response;
        if ((int)response.StatusCode >= 500)
            Interlocked.Increment(ref _failedAttempts);
        return response.StatusCode switch
        {
            HttpStatusCode.NoContent or HttpStatusCode.OK => AriOutcome.Done,
            HttpStatusCode.NotFound or HttpStatusCode.UnprocessableEntity => AriOutcome.ChannelGone,
            HttpStatusCode.Conflict => AriOutcome.NotInStasis,
            _ => throw new HttpRequestException(
                $"ARI POST {path} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}", null, response.StatusCode),
        };
    }

    public void Dispose() => _http.Dispose();
}
