using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Xunit;
using Sim = CallRouter.AriSimulator.AriSimulator;

namespace CallRouter.Tests.CallControl;

/// <summary>The simulator's call control answers and events exactly as ari-call-control.md recorded them, quirks included.</summary>
public sealed class SimulatorCallControlTests : IAsyncLifetime
{
    private const string App = "recorder";
    private Sim _sim = null!;
    private HttpClient _http = null!;
    private ClientWebSocket _socket = null!;

    public async Task InitializeAsync()
    {
        _sim = await Sim.StartAsync();
        _http = new HttpClient { BaseAddress = _sim.BaseUrl };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("router:secret")));
        _socket = new ClientWebSocket();
        var events = new UriBuilder(new Uri(_sim.BaseUrl, "events")) { Scheme = "ws", Query = $"app={App}&api_key=router:secret" }.Uri;
        await _socket.ConnectAsync(events, CancellationToken.None);
        await _sim.WaitForAppAsync(App, TimeSpan.FromSeconds(5));
    }

    public async Task DisposeAsync()
    {
        _socket.Dispose();
        _http.Dispose();
        await _sim.DisposeAsync();
    }

    [Fact]
    public async Task Bridge_dial_answers_and_events_follow_the_recording()
    {
        var a = _sim.Originate(App, ["leg-a"]);
        Assert.Equal("StasisStart", (await Next())["type"].GetString());

        var (status, body) = await Send(HttpMethod.Post, "channels/create?endpoint=Local/s@answerer/n&app=recorder&appArgs=leg-b");
        Assert.Equal(200, status);
        var b = body.RootElement.GetProperty("id").GetString()!;
        Assert.Equal(("Down", "answerer", "s"), (body.RootElement.GetProperty("state").GetString(),
            body.RootElement.GetProperty("dialplan").GetProperty("context").GetString(), body.RootElement.GetProperty("dialplan").GetProperty("exten").GetString()));
        Assert.EndsWith(";1", body.RootElement.GetProperty("name").GetString());
        await Expect("ChannelDialplan", e => Assert.Equal("recorder,leg-b", e["dialplan_app_data"].GetString()));
        await Expect("ChannelVarset", e => Assert.Equal("STASISSTATUS", e["variable"].GetString()));
        await Expect("StasisStart", e => Assert.Equal("leg-b", e["args"][0].GetString()));

        (status, body) = await Send(HttpMethod.Post, "bridges?type=mixing&name=rec");
        Assert.Equal(200, status);
        var bridge = body.RootElement.GetProperty("id").GetString()!;
        Assert.Equal(("simple_bridge", "mixing", "stasis", "Stasis", "rec"), (body.RootElement.GetProperty("technology").GetString(),
            body.RootElement.GetProperty("bridge_type").GetString(), body.RootElement.GetProperty("bridge_class").GetString(),
            body.RootElement.GetProperty("creator").GetString(), body.RootElement.GetProperty("name").GetString()));
        Assert.Equal(204, (await Send(HttpMethod.Post, $"bridges/{bridge}/addChannel?channel={a.Id},{b}")).Status);
        await Expect("ChannelEnteredBridge", e => Assert.Equal(a.Id, e["channel"].GetProperty("id").GetString()));
        await Expect("ChannelEnteredBridge", e => Assert.Equal(2, e["bridge"].GetProperty("channels").GetArrayLength()));
        await Expect("ChannelVarset", e => Assert.Equal("BRIDGEPEER", e["variable"].GetString()));
        await Expect("ChannelVarset", e => Assert.Equal("BRIDGEPEER", e["variable"].GetString()));

        Assert.Equal(204, (await Send(HttpMethod.Post, $"channels/{b}/dial?timeout=10")).Status);
        await Expect("Dial", e => Assert.Equal(("", "s@answerer/n"), (e["dialstatus"].GetString(), e["dialstring"].GetString())));
        await Expect("ChannelStateChange", e => Assert.Equal((b, "Up"), (e["channel"].GetProperty("id").GetString(), e["channel"].GetProperty("state").GetString())));
        await Expect("Dial", e => Assert.Equal("ANSWER", e["dialstatus"].GetString()));
        // Control frames cross the bridge: the caller is Up too.
        await Expect("ChannelStateChange", e => Assert.Equal((a.Id, "Up"), (e["channel"].GetProperty("id").GetString(), e["channel"].GetProperty("state").GetString())));
        (status, body) = await Send(HttpMethod.Post, $"channels/{b}/dial");
        Assert.Equal((409, "Channel is not in the 'Down' state"), (status, body.RootElement.GetProperty("message").GetString()));

        // A missing sound: 201 queued, then PlaybackStarted and PlaybackFinished "failed"; stopping it then is 404.
        (status, body) = await Send(HttpMethod.Post, $"channels/{a.Id}/play?media=sound:does-not-exist");
        Assert.Equal((201, "queued", $"channel:{a.Id}"), (status, body.RootElement.GetProperty("state").GetString(), body.RootElement.GetProperty("target_uri").GetString()));
        var playback = body.RootElement.GetProperty("id").GetString()!;
        await Expect("PlaybackStarted", e => Assert.Equal("playing", e["playback"].GetProperty("state").GetString()));
        await Expect("PlaybackFinished", e => Assert.Equal("failed", e["playback"].GetProperty("state").GetString()));
        (status, body) = await Send(HttpMethod.Delete, $"playbacks/{playback}");
        Assert.Equal((404, "Playback not found"), (status, body.RootElement.GetProperty("message").GetString()));

        // Errors: unknown technology (key "error"), unknown ids.
        (status, body) = await Send(HttpMethod.Post, "channels/create?endpoint=Bogus/xyz&app=recorder");
        Assert.Equal((500, "Allocation failed"), (status, body.RootElement.GetProperty("error").GetString()));
        (status, body) = await Send(HttpMethod.Post, "channels/nope/answer");
        Assert.Equal((404, "Channel not found"), (status, body.RootElement.GetProperty("message").GetString()));
        (status, body) = await Send(HttpMethod.Post, "bridges/nope/addChannel?channel=x");
        Assert.Equal((404, "Bridge not found"), (status, body.RootElement.GetProperty("message").GetString()));

        // DELETE B: it leaves the bridge, ChannelHangupRequest (32, soft), StasisEnd; ChannelDestroyed reaches subscribers.
        Assert.Equal(200, (await Send(HttpMethod.Post, $"applications/{App}/subscription?eventSource=channel:{b}")).Status);
        Assert.Equal(204, (await Send(HttpMethod.Delete, $"channels/{b}?reason=normal")).Status);
        await Expect("ChannelVarset", e => Assert.Equal("", e["value"].GetString()));
        await Expect("ChannelLeftBridge", e => Assert.Equal(b, e["channel"].GetProperty("id").GetString()));
        await Expect("ChannelHangupRequest", e => Assert.Equal((32, true), (e["cause"].GetInt32(), e["soft"].GetBoolean())));
        await Expect("StasisEnd", _ => { });
        await Expect("ChannelDestroyed", e => Assert.Equal((16, "Normal Clearing"), (e["cause"].GetInt32(), e["cause_txt"].GetString())));

        // Continue A: it leaves the bridge first; then, out of Stasis, operations on it answer 409; the bridge outlives it.
        Assert.Equal(204, (await Send(HttpMethod.Post, $"channels/{a.Id}/continue")).Status);
        await Expect("ChannelVarset", _ => { });
        await Expect("ChannelLeftBridge", e => Assert.Equal(0, e["bridge"].GetProperty("channels").GetArrayLength()));
        await Expect("StasisEnd", _ => { });
        foreach (var path in new[] { $"channels/{a.Id}/answer", $"channels/{a.Id}/dtmf?dtmf=34" })
        {
            (status, body) = await Send(HttpMethod.Post, path);
            Assert.Equal((409, "Channel not in Stasis application"), (status, body.RootElement.GetProperty("message").GetString()));
        }
        Assert.Single(_sim.Bridges);
        Assert.Equal(204, (await Send(HttpMethod.Delete, $"bridges/{bridge}")).Status);
        await Expect("BridgeDestroyed", e => Assert.Equal(bridge, e["bridge"].GetProperty("id").GetString()));
        Assert.Empty(_sim.Bridges);
    }

    private async Task<(int Status, JsonDocument Body)> Send(HttpMethod method, string path)
    {
        using var response = await _http.SendAsync(new HttpRequestMessage(method, path));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonDocument.Parse(text.Length == 0 ? "{}" : text));
    }

    private async Task Expect(string type, Action<Dictionary<string, JsonElement>> check)
    {
        var e = await Next();
        Assert.Equal(type, e["type"].GetString());
        check(e);
    }

    private async Task<Dictionary<string, JsonElement>> Next()
    {
        var buffer = new byte[64 * 1024];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var result = await _socket.ReceiveAsync(buffer, timeout.Token);
        using var document = JsonDocument.Parse(buffer.AsMemory(0, result.Count));
        return document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());
    }
}
