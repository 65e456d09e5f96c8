using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CallRouter.Messages;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Control;

/// <summary>What ARI answered a call-control request: the status and, for errors, Asterisk's text (its "message" or "error").</summary>
public sealed record AriAnswer(int Status, string Body)
{
    public bool Ok => Status is >= 200 and < 300;

    /// <summary>Asterisk's error text: most errors say {"message":…}, channels/create's allocation failure says {"error":…}.</summary>
    public string ErrorText
    {
        get
        {
            try
            {
                using var document = JsonDocument.Parse(Body);
                foreach (var key in (string[])["message", "error"])
                    if (document.RootElement.TryGetProperty(key, out var text) && text.ValueKind == JsonValueKind.String)
                        return text.GetString()!;
            }
            catch (JsonException)
            {
            }
            return Body.Length == 0 ? $"ARI answered {Status}" : Body;
        }
    }

    /// <summary>A string field of the JSON body (e.g. "value" of a variable).</summary>
    public string? Field(string name)
    {
        try
        {
            using var document = JsonDocument.Parse(Body);
            return document.RootElement.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The reason a program can act on for a refused request: 404 not-found, 409/422 conflict, 400 invalid-request, else failed.</summary>
    public string FailureReason => Status switch
    {
        404 => ControlFailure.NotFound,
        409 or 422 => ControlFailure.Conflict,
        400 => ControlFailure.InvalidRequest,
        _ => ControlFailure.Failed,
    };
}

/// <summary>The ARI REST requests of call control (channels, bridges, playbacks), answered as status + body; transport errors throw.</summary>
public sealed class AriControlClient : IDisposable
{
    private readonly HttpClient _http;

    public AriControlClient(IOptions<AdapterOptions> options)
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

    public Task<AriAnswer> Post(string path, params (string Key, string? Value)[] query) => Send(HttpMethod.Post, path, query);

    public Task<AriAnswer> Get(string path, params (string Key, string? Value)[] query) => Send(HttpMethod.Get, path, query);

    public Task<AriAnswer> Delete(string path, params (string Key, string? Value)[] query) => Send(HttpMethod.Delete, path, query);

    /// <summary>An id as one path segment.</summary>
    public static string Segment(string id) => Uri.EscapeDataString(id);

    private async Task<AriAnswer> Send(HttpMethod method, string path, (string Key, string? Value)[] query)
    {
        var uri = new StringBuilder(path);
        var separator = '?';
        foreach (var (key, value) in query)
        {
            if (value is null)
                continue;
            uri.Append(separator).Append(key).Append('=').Append(Uri.EscapeDataString(value));
            separator = '&';
        }
        using var request = new HttpRequestMessage(method, uri.ToString());
        using var response = await _http.SendAsync(request);
        return new AriAnswer((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public void Dispose() => _http.Dispose();
}
