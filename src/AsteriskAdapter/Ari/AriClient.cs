using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Ari;

/// <summary>What an ARI channel operation found.</summary>
public enum AriOutcome
{
    Done,
    ChannelGone,
    NotInStasis,
}

/// <summary>The few ARI REST operations the adapter needs, with Asterisk's status codes mapped to outcomes.</summary>
public sealed class AriClient : IDisposable
{
    private readonly HttpClient _http;

    public AriClient(IOptions<AdapterOptions> options)
    {
        var o = options.Value;
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = o.MaxAriConnections,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            UseProxy = false,
        };
        _http = new HttpClient(handler) { BaseAddress = o.AriUrl, Timeout = TimeSpan.FromSeconds(10) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(
            "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{o.AriUser}:{o.AriPassword}")));
    }

    public Task<AriOutcome> SetVariable(string channelId, string name, string value) =>
        Post($"channels/{Uri.EscapeDataString(channelId)}/variable?variable={Uri.EscapeDataString(name)}&value={Uri.EscapeDataString(value)}");

    /// <summary>Continue in the dialplan: at the target, or at the next priority when there is none.</summary>
    public Task<AriOutcome> Continue(string channelId, string? context, string? extension, int? priority)
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
        return Post(query.ToString());
    }

    public Task<AriOutcome> Move(string channelId, string app, IReadOnlyList<string>? appArgs)
    {
        var path = $"channels/{Uri.EscapeDataString(channelId)}/move?app={Uri.EscapeDataString(app)}";
        if (appArgs is { Count: > 0 })
            path += "&appArgs=" + Uri.EscapeDataString(string.Join(',', appArgs));
        return Post(path);
    }

    /// <summary>
    /// Keep hearing about a channel after it leaves Stasis, up to its ChannelDestroyed (for the CDR). ChannelGone when
    /// the channel no longer exists.
    /// </summary>
    public Task<AriOutcome> Subscribe(string app, string channelId) =>
        Post($"applications/{Uri.EscapeDataString(app)}/subscription?eventSource={Uri.EscapeDataString("channel:" + channelId)}");

    /// <summary>Live channels, as ARI lists them.</summary>
    public async Task<IReadOnlyList<AriChannel>> ListChannels(CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync("channels", cancellationToken);
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken);
        return [.. document.RootElement.EnumerateArray().Select(AriChannel.Parse)];
    }

    private async Task<AriOutcome> Post(string path)
    {
        using var response = await _http.PostAsync(path, content: null);
        return response.StatusCode switch
        {
            HttpStatusCode.NoContent or HttpStatusCode.OK => AriOutcome.Done,
            HttpStatusCode.NotFound or HttpStatusCode.UnprocessableEntity => AriOutcome.ChannelGone,
            HttpStatusCode.Conflict => AriOutcome.NotInStasis,
            _ => throw new HttpRequestException(
                $"ARI POST {path} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}", null, response.StatusCode),
        };
    }

    public void Dispose() => _http.Dispose();
}
