using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Threading.RateLimiting;
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

/// <summary>Which queue an ARI request waits in for a connection.</summary>
public enum AriLane
{
    /// <summary>A call waits on it: ROUTER_* variables, continue, move, recovery at connect. Never shed.</summary>
    Call,

    /// <summary>Nothing waits on it: the CDR subscription, the early ROUTER_CALL_ID, draft checks. Bounded, and shed when full.</summary>
    Background,
}

/// <summary>A background ARI request refused because its lane's queue was full (<see cref="AdapterOptions.AriBackgroundQueue"/>).</summary>
public sealed class AriRequestShedException(string path) : Exception($"ARI request {path} shed: the background queue is full");

/// <summary>
/// The few ARI REST operations the adapter needs, with Asterisk's status codes mapped to outcomes. Requests go through
/// one of two lanes (<see cref="AriLane"/>), each with its own connections and a limiter that lets at most as many
/// requests out as it has connections, so a request never waits inside HttpClient's pool: its timeout
/// (<see cref="AdapterOptions.AriRequestTimeout"/>) starts once it is sent, not while it queues. The idempotent ones
/// are retried on 5xx, reset or timeout. What still fails throws <see cref="HttpRequestException"/>,
/// <see cref="TimeoutRejectedException"/> or (background lane full) <see cref="AriRequestShedException"/>.
/// </summary>
public sealed class AriClient : IDisposable
{
    private readonly Lane _call;
    private readonly Lane _background;
    private readonly ResiliencePipeline _idempotent;
    private readonly ResiliencePipeline _sendTimeout;
    private readonly ILogger<AriClient> _logger;
    private long _failedAttempts;
    private long _shed;
    private bool _arrayMissing;

    /// <summary>ARI requests that failed (5xx, reset or timeout), retried or not.</summary>
    public long FailedAttempts => Interlocked.Read(ref _failedAttempts);

    /// <summary>Background requests refused because the background queue was full.</summary>
    public long Shed => Interlocked.Read(ref _shed);

    /// <summary>Requests waiting for one of the lane's connections now: (call lane, background lane).</summary>
    public (long Call, long Background) Waiting =>
        (_call.Limiter.GetStatistics()?.CurrentQueuedCount ?? 0, _background.Limiter.GetStatistics()?.CurrentQueuedCount ?? 0);

    /// <summary>One lane: its own connection pool, and a limiter queueing requests until one of its connections is free.</summary>
    private sealed class Lane(HttpClient http, ConcurrencyLimiter limiter) : IDisposable
    {
        public HttpClient Http { get; } = http;
        public ConcurrencyLimiter Limiter { get; } = limiter;

        public static Lane Create(AdapterOptions o, int concurrency, int queueLimit)
        {
            var handler = new SocketsHttpHandler
            {
                MaxConnectionsPerServer = concurrency,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
                UseProxy = false,
            };
            // The pipelines time each POST out (a draft check its GET); this only bounds the GETs at connect (channels, a variable).
            var http = new HttpClient(handler) { BaseAddress = o.AriUrl, Timeout = TimeSpan.FromSeconds(10) };
            http.DefaultRequestHeaders.Authorization = BasicAuthorization(o);
            var limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
            {
                PermitLimit = concurrency,
                QueueLimit = queueLimit,
                QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            });
            return new Lane(http, limiter);
        }

        public void Dispose()
        {
            Limiter.Dispose();
            Http.Dispose();
        }
    }

    public AriClient(IOptions<AdapterOptions> options, ILogger<AriClient> logger)
    {
        var o = options.Value;
        _logger = logger;
        _call = Lane.Create(o, o.MaxAriConnections, int.MaxValue);
        _background = Lane.Create(o, o.AriBackgroundConcurrency, o.AriBackgroundQueue);
        // "ari-request-timeout": one request, from when it got a connection to its answer.
        _sendTimeout = new ResiliencePipelineBuilder { Name = "ari-request-timeout" }
            .AddTimeout(new TimeoutStrategyOptions
            {
                Timeout = o.AriRequestTimeout,
                OnTimeout = _ =>
                {
                    Interlocked.Increment(ref _failedAttempts);
                    return default;
                },
            })
            .Build();
        // "ari-idempotent": a variable set, continue or subscription may be sent twice (a second continue answers 409,
        // which means the channel already left); 4xx answers are outcomes, not failures. A retry queues again.
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
            .Build();
    }

    /// <summary>HTTP Basic credentials for ARI, for REST and for the events WebSocket alike.</summary>
    public static AuthenticationHeaderValue BasicAuthorization(AdapterOptions o) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{o.AriUser}:{o.AriPassword}")));

    public Task<AriOutcome> SetVariable(string channelId, string name, string value, CancellationToken cancellationToken = default,
        AriLane lane = AriLane.Call) =>
        Post(_idempotent, LaneOf(lane), cancellationToken, $"channels/{Uri.EscapeDataString(channelId)}/variable?variable={Uri.EscapeDataString(name)}&value={Uri.EscapeDataString(value)}");

    /// <summary>
    /// Sets several variables, in one request where it can: ARRAY(A,B,C)=a,b,c (Asterisk's func_strings) sets each in
    /// order, with a ChannelVarset for each, as separate sets would. A value that ARRAY's argument parsing could alter
    /// (anything but letters, digits and _.:@+-/) gets a request of its own. An Asterisk without ARRAY answers 400
    /// "Failed to execute function": from then on each variable is set on its own. One outcome per request made.
    /// </summary>
    public async Task<AriOutcome[]> SetVariables(string channelId, IReadOnlyList<(string Name, string Value)> variables,
        CancellationToken cancellationToken = default)
    {
        var together = Volatile.Read(ref _arrayMissing) ? [] : variables.Where(v => ArraySafe(v.Value)).ToList();
        if (together.Count < 2)
            return await SetEach(channelId, variables, cancellationToken);
        var alone = SetEach(channelId, [.. variables.Except(together)], cancellationToken);
        AriOutcome[] outcome;
        try
        {
            outcome = [await SetVariable(channelId, $"ARRAY({string.Join(',', together.Select(v => v.Name))})",
                string.Join(',', together.Select(v => v.Value)), cancellationToken)];
        }
        catch (HttpRequestException exception) when (exception.StatusCode == HttpStatusCode.BadRequest)
        {
            Volatile.Write(ref _arrayMissing, true);
            _logger.LogWarning("Asterisk has no ARRAY function ({Error}); each ROUTER_* variable is now set with a request of its own", exception.Message);
            outcome = await SetEach(channelId, together, cancellationToken);
        }
        return [.. outcome, .. await alone];
    }

    private Task<AriOutcome[]> SetEach(string channelId, IReadOnlyList<(string Name, string Value)> variables, CancellationToken cancellationToken) =>
        Task.WhenAll(variables.Select(v => SetVariable(channelId, v.Name, v.Value, cancellationToken)));

    /// <summary>A value ARRAY() passes on as it is: no separator, quote, escape, bracket or space for its argument parsing.</summary>
    private static bool ArraySafe(string value) =>
        value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or ':' or '@' or '+' or '-' or '/');

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
        return Post(_idempotent, _call, cancellationToken, query.ToString());
    }

    public Task<AriOutcome> Move(string channelId, string app, IReadOnlyList<string>? appArgs, CancellationToken cancellationToken = default)
    {
        var path = $"channels/{Uri.EscapeDataString(channelId)}/move?app={Uri.EscapeDataString(app)}";
        if (appArgs is { Count: > 0 })
            path += "&appArgs=" + Uri.EscapeDataString(string.Join(',', appArgs));
        // Not retried: a second move could take the channel from the winner's app.
        return Post(ResiliencePipeline.Empty, _call, cancellationToken, path);
    }

    /// <summary>
    /// Keep hearing about a channel after it leaves Stasis, up to its ChannelDestroyed (for the CDR). ChannelGone when
    /// the channel no longer exists.
    /// </summary>
    public Task<AriOutcome> Subscribe(string app, string channelId) =>
        Post(_idempotent, _background, CancellationToken.None, $"applications/{Uri.EscapeDataString(app)}/subscription?eventSource={Uri.EscapeDataString("channel:" + channelId)}");

    /// <summary>Whether the channel still exists (GET /channels/{id}; 404 = gone), on the background lane.</summary>
    public async Task<bool> ChannelExists(string channelId, CancellationToken cancellationToken)
    {
        using var lease = await Acquire(_background, "GET channel", cancellationToken);
        return await _sendTimeout.ExecuteAsync(static async (state, token) =>
        {
            using var response = await state.Http.GetAsync($"channels/{Uri.EscapeDataString(state.ChannelId)}", token);
            if (response.StatusCode == HttpStatusCode.NotFound)
                return false;
            response.EnsureSuccessStatusCode();
            return true;
        }, (_background.Http, ChannelId: channelId), cancellationToken);
    }

    /// <summary>A channel variable's value; null when the channel or the variable does not exist.</summary>
    public async Task<string?> GetVariable(string channelId, string name, CancellationToken cancellationToken)
    {
        using var lease = await Acquire(_call, "GET variable", cancellationToken);
        using var response = await _call.Http.GetAsync(
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
        using var lease = await Acquire(_call, "GET channels", cancellationToken);
        using var response = await _call.Http.GetAsync("channels", cancellationToken);
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken);
        return [.. document.RootElement.EnumerateArray().Select(AriChannel.Parse)];
    }

    private Lane LaneOf(AriLane lane) => lane == AriLane.Call ? _call : _background;

    private Task<AriOutcome> Post(ResiliencePipeline pipeline, Lane lane, CancellationToken cancellationToken, string path) =>
        pipeline.ExecuteAsync(static async (state, token) => await state.Client.Send(state.Lane, state.Path, token),
            (Client: this, Lane: lane, Path: path), cancellationToken).AsTask();

    /// <summary>Waits for one of the lane's connections, then sends with the request timeout running from there.</summary>
    private async ValueTask<AriOutcome> Send(Lane lane, string path, CancellationToken cancellationToken)
    {
        using var lease = await Acquire(lane, path, cancellationToken);
        return await _sendTimeout.ExecuteAsync(static async (state, token) => await state.Client.PostOnce(state.Lane, state.Path, token),
            (Client: this, Lane: lane, Path: path), cancellationToken);
    }

    private async ValueTask<RateLimitLease> Acquire(Lane lane, string what, CancellationToken cancellationToken)
    {
        var lease = await lane.Limiter.AcquireAsync(1, cancellationToken);
        if (lease.IsAcquired)
            return lease;
        lease.Dispose();
        Interlocked.Increment(ref _shed);
        throw new AriRequestShedException(what);
    }

    /// <summary>5xx, or no answer at all (connection refused or reset).</summary>
    private static bool IsTransient(HttpRequestException exception) => exception.StatusCode is null || (int)exception.StatusCode >= 500;

    private async Task<AriOutcome> PostOnce(Lane lane, string path, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await lane.Http.PostAsync(path, content: null, cancellationToken);
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

    public void Dispose()
    {
        _call.Dispose();
        _background.Dispose();
    }
}
