using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using CallRouter.AriSimulator;
using Xunit;
using Sim = CallRouter.AriSimulator.AriSimulator;

namespace CallRouter.Tests;

/// <summary>The ARI simulator answers over real HTTP/WebSocket like the recorded Asterisk 23.</summary>
public sealed class AriSimulatorTests : IAsyncLifetime
{
    private const string App = "call-router";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private Sim _sim = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _sim = await Sim.StartAsync();
        _http = new HttpClient { BaseAddress = _sim.BaseUrl };
        _http.DefaultRequestHeaders.Authorization = Basic("router", "secret");
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _sim.DisposeAsync();
    }

    [Fact]
    public async Task Bad_credentials_get_401_on_rest_and_on_the_websocket()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "channels");
        request.Headers.Authorization = Basic("router", "wrong");
        using var response = await _http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Basic realm=\"Asterisk REST Interface\"", response.Headers.WwwAuthenticate.ToString());
        Assert.Equal("{\"message\":\"Authentication required\"}", await response.Content.ReadAsStringAsync());

        using var ws = new ClientWebSocket { Options = { CollectHttpResponseDetails = true } };
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(EventsUri(App, "router:wrong"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, ws.HttpStatusCode);
        Assert.False(_sim.IsAppConnected(App));
    }

    [Fact]
    public async Task Stasis_fails_when_the_app_is_not_connected()
    {
        var channel = _sim.Originate(App, ["sales"]);

        var handedOver = await channel.Handover.WaitAsync(Timeout);
        Assert.Equal("FAILED", handedOver.StasisStatus);
        Assert.Null(channel.App);
        Assert.False(channel.HungUp);

        // Still alive, but in the dialplan: REST actions that need Stasis answer 409.
        using var response = await _http.PostAsync($"channels/{channel.Id}/continue", null);
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
    }

    [Fact]
    public async Task StasisStart_has_the_recorded_shape()
    {
        await using var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, ["sales"], extension: "1000", callerNumber: "5551234", callerName: "Alice");

        var e = await events.NextAsync();
        Assert.Equal(["type", "timestamp", "args", "channel", "asterisk_id", "application"], Names(e));
        Assert.Equal("StasisStart", e.GetProperty("type").GetString());
        Assert.Equal(["sales"], e.GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal("02:fc:00:00:00:01", e.GetProperty("asterisk_id").GetString());
        Assert.Equal(App, e.GetProperty("application").GetString());
        AssertAsteriskTimestamp(e.GetProperty("timestamp").GetString());

        var ch = e.GetProperty("channel");
        Assert.Equal(
            ["id", "name", "state", "protocol_id", "caller", "connected", "accountcode", "dialplan", "creationtime", "language"],
            Names(ch));
        Assert.Equal(channel.Id, ch.GetProperty("id").GetString());
        Assert.Matches(@"^\d+\.\d+$", channel.Id);
        Assert.Matches(@"^Local/1000@from-test-[0-9a-f]{8};2$", ch.GetProperty("name").GetString());
        Assert.Equal("Ring", ch.GetProperty("state").GetString());
        Assert.Equal("Alice", ch.GetProperty("caller").GetProperty("name").GetString());
        Assert.Equal("5551234", ch.GetProperty("caller").GetProperty("number").GetString());
        AssertAsteriskTimestamp(ch.GetProperty("creationtime").GetString());

        var dialplan = ch.GetProperty("dialplan");
        Assert.Equal("from-test", dialplan.GetProperty("context").GetString());
        Assert.Equal("1000", dialplan.GetProperty("exten").GetString());
        Assert.Equal(2, dialplan.GetProperty("priority").GetInt32());
        Assert.Equal("Stasis", dialplan.GetProperty("app_name").GetString());
        Assert.Equal("call-router,sales", dialplan.GetProperty("app_data").GetString());

        Assert.Equal(App, channel.App);
        Assert.NotEqual(0, channel.StasisStartTimestamp);
        Assert.Throws<InvalidOperationException>(() => _sim.Originate(App, [], channelId: channel.Id));
    }

    [Fact]
    public async Task ARRAY_sets_each_variable_in_order_with_its_own_varset_event()
    {
        await using var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, ["sales"]);
        Assert.Equal("StasisStart", Type(await events.NextAsync()));

        var name = Uri.EscapeDataString("ARRAY(ROUTER_STATUS,ROUTER_REASON,ROUTER_WINNER)");
        using (var set = await _http.PostAsync($"channels/{channel.Id}/variable?variable={name}&value={Uri.EscapeDataString("SUCCESS,claimed,sales")}", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, set.StatusCode);
        }

        foreach (var (variable, value) in new[] { ("ROUTER_STATUS", "SUCCESS"), ("ROUTER_REASON", "claimed"), ("ROUTER_WINNER", "sales") })
        {
            var varset = await events.NextAsync();
            Assert.Equal("ChannelVarset", Type(varset));
            Assert.Equal(variable, varset.GetProperty("variable").GetString());
            Assert.Equal(value, varset.GetProperty("value").GetString());
            Assert.Equal(value, channel.Variables[variable]);
        }
        Assert.False(channel.Variables.ContainsKey("ARRAY(ROUTER_STATUS,ROUTER_REASON,ROUTER_WINNER)"));
    }

    [Fact]
    public async Task Without_the_ARRAY_function_a_function_set_answers_400_and_sets_nothing()
    {
        await using var sim = await Sim.StartAsync(new AriSimulatorOptions { ArrayFunction = false });
        using var http = new HttpClient { BaseAddress = sim.BaseUrl };
        http.DefaultRequestHeaders.Authorization = Basic("router", "secret");
        await using var events = await EventSocket.ConnectAsync(sim, App);
        var channel = sim.Originate(App, ["sales"]);
        Assert.Equal("StasisStart", Type(await events.NextAsync()));

        using var set = await http.PostAsync($"channels/{channel.Id}/variable?variable={Uri.EscapeDataString("ARRAY(A,B)")}&value=1,2", null);

        Assert.Equal(HttpStatusCode.BadRequest, set.StatusCode);
        Assert.Equal("{\"message\":\"Failed to execute function\"}", await set.Content.ReadAsStringAsync());
        Assert.Empty(channel.Variables);
    }

    [Fact]
    public async Task Variable_then_continue_returns_the_call_to_the_dialplan()
    {
        await using var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, ["sales"]);
        Assert.Equal("StasisStart", Type(await events.NextAsync()));

        using (var set = await _http.PostAsync($"channels/{channel.Id}/variable?variable=ROUTER_STATUS&value=SUCCESS", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, set.StatusCode);
        }

        var varset = await events.NextAsync();
        Assert.Equal("ChannelVarset", Type(varset));
        Assert.Equal("ROUTER_STATUS", varset.GetProperty("variable").GetString());
        Assert.Equal("SUCCESS", varset.GetProperty("value").GetString());
        Assert.Equal("{\"value\":\"SUCCESS\"}", await _http.GetStringAsync($"channels/{channel.Id}/variable?variable=ROUTER_STATUS"));

        using (var cont = await _http.PostAsync($"channels/{channel.Id}/continue", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, cont.StatusCode);
        }

        var end = await events.NextAsync();
        Assert.Equal("StasisEnd", Type(end));
        Assert.Equal(channel.Id, end.GetProperty("channel").GetProperty("id").GetString());

        await channel.Handover.WaitAsync(Timeout);
        Assert.Equal("SUCCESS", channel.StasisStatus);
        Assert.Equal(new DialplanLocation("from-test", "1000", 3), channel.ContinuedTo);
        Assert.Equal("SUCCESS", channel.Variables["ROUTER_STATUS"]);
        Assert.Null(channel.App);

        // Alive but no longer in Stasis.
        using var again = await _http.PostAsync($"channels/{channel.Id}/continue", null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal("{\"message\":\"Channel not in Stasis application\"}", await again.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_gone_channel_answers_404_and_422()
    {
        await using var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, []);
        await events.NextAsync();
        await _sim.HangupAsync(channel.Id, 16);
        await channel.Destroyed.WaitAsync(Timeout);

        using var get = await _http.GetAsync($"channels/{channel.Id}");
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Equal("{\"message\":\"Channel not found\"}", await get.Content.ReadAsStringAsync());
        using var variable = await _http.PostAsync($"channels/{channel.Id}/variable?variable=X&value=1", null);
        Assert.Equal(HttpStatusCode.NotFound, variable.StatusCode);
        using var delete = await _http.DeleteAsync($"channels/{channel.Id}");
        Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
        using var subscribe = await _http.PostAsync($"applications/{App}/subscription?eventSource=channel:{channel.Id}", null);
        Assert.Equal((HttpStatusCode)422, subscribe.StatusCode);
        Assert.Equal("{\"message\":\"Event source does not exist\"}", await subscribe.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Caller_hangup_in_stasis_gives_only_HangupRequest_and_StasisEnd_without_subscription()
    {
        await using var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, []);
        await events.NextAsync();

        await _sim.HangupAsync(channel.Id, 17);

        var request = await events.NextAsync();
        Assert.Equal("ChannelHangupRequest", Type(request));
        Assert.Equal(17, request.GetProperty("cause").GetInt32());
        Assert.Equal("StasisEnd", Type(await events.NextAsync()));
        await events.AssertSilentAsync();
        Assert.True(channel.HungUp);
        Assert.Equal(17, channel.HangupCause);
    }

    [Fact]
    public async Task A_subscription_delivers_ChannelDestroyed_after_continue()
    {
        await using var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, ["sales"]);
        await events.NextAsync();

        using var subscribe = await _http.PostAsync($"applications/{App}/subscription?eventSource=channel:{channel.Id}", null);
        Assert.Equal(HttpStatusCode.OK, subscribe.StatusCode);
        using var app = JsonDocument.Parse(await subscribe.Content.ReadAsStringAsync());
        Assert.Equal(App, app.RootElement.GetProperty("name").GetString());
        Assert.Equal([channel.Id], app.RootElement.GetProperty("channel_ids").EnumerateArray().Select(i => i.GetString()));

        using (var cont = await _http.PostAsync($"channels/{channel.Id}/continue?context=sales&extension=s&priority=1", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, cont.StatusCode);
        }

        Assert.Equal("StasisEnd", Type(await events.NextAsync()));
        Assert.Equal(new DialplanLocation("sales", "s", 1), channel.ContinuedTo);

        await _sim.HangupAsync(channel.Id, 16);
        Assert.Equal("ChannelHangupRequest", Type(await events.NextAsync()));
        var destroyed = await events.NextAsync();
        Assert.Equal(["type", "timestamp", "cause", "cause_txt", "channel", "asterisk_id", "application"], Names(destroyed));
        Assert.Equal("ChannelDestroyed", Type(destroyed));
        Assert.Equal(16, destroyed.GetProperty("cause").GetInt32());
        Assert.Equal("Normal Clearing", destroyed.GetProperty("cause_txt").GetString());
        Assert.Equal("sales", destroyed.GetProperty("channel").GetProperty("dialplan").GetProperty("context").GetString());
    }

    [Fact]
    public async Task Delete_sends_a_soft_hangup_request_then_StasisEnd()
    {
        await using var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, []);
        await events.NextAsync();

        using var delete = await _http.DeleteAsync($"channels/{channel.Id}");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);

        var request = await events.NextAsync();
        Assert.Equal("ChannelHangupRequest", Type(request));
        Assert.Equal(32, request.GetProperty("cause").GetInt32());
        Assert.True(request.GetProperty("soft").GetBoolean());
        Assert.Equal("StasisEnd", Type(await events.NextAsync()));
        await channel.Destroyed.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Move_to_an_unconnected_app_fails_and_to_a_connected_app_succeeds()
    {
        await using var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, []);
        await events.NextAsync();

        using (var move = await _http.PostAsync($"channels/{channel.Id}/move?app=ghost-app&appArgs=queue-7,prio", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, move.StatusCode);
        }

        var failed = await events.NextAsync();
        Assert.Equal(["type", "timestamp", "channel", "destination", "args", "asterisk_id", "application"], Names(failed));
        Assert.Equal("ApplicationMoveFailed", Type(failed));
        Assert.Equal("ghost-app", failed.GetProperty("destination").GetString());
        Assert.Equal(["queue-7", "prio"], failed.GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(App, channel.App);
        Assert.False(channel.Handover.IsCompleted);

        await using var other = await EventSocket.ConnectAsync(_sim, "other-app");
        using (var move = await _http.PostAsync($"channels/{channel.Id}/move?app=other-app&appArgs=queue-7,prio", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, move.StatusCode);
        }

        Assert.Equal("StasisEnd", Type(await events.NextAsync()));
        var start = await other.NextAsync();
        Assert.Equal("StasisStart", Type(start));
        Assert.Equal("other-app", start.GetProperty("application").GetString());
        Assert.Equal(["queue-7", "prio"], start.GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        await channel.Handover.WaitAsync(Timeout);
        Assert.Equal("other-app", channel.MovedToApp);
        Assert.Equal("other-app", channel.App);
    }

    [Fact]
    public async Task Channels_stay_parked_when_the_app_disconnects()
    {
        var events = await EventSocket.ConnectAsync(_sim, App);
        var channel = _sim.Originate(App, []);
        await events.NextAsync();

        _sim.DisconnectApp(App);
        Assert.False(_sim.IsAppConnected(App));
        await events.DisposeAsync();

        using var list = JsonDocument.Parse(await _http.GetStringAsync("channels"));
        var listed = Assert.Single(list.RootElement.EnumerateArray());
        Assert.Equal(channel.Id, listed.GetProperty("id").GetString());
        Assert.Equal("Stasis", listed.GetProperty("dialplan").GetProperty("app_name").GetString());
        Assert.Equal(App, channel.App);
    }

    [Fact]
    public async Task HangupAfterHandover_ends_continued_channels_by_itself()
    {
        await using var sim = await Sim.StartAsync(new AriSimulatorOptions { HangupAfterHandover = TimeSpan.FromMilliseconds(50) });
        using var http = new HttpClient { BaseAddress = sim.BaseUrl };
        http.DefaultRequestHeaders.Authorization = Basic("router", "secret");
        await using var events = await EventSocket.ConnectAsync(sim, App);
        var channel = sim.Originate(App, []);
        await events.NextAsync();

        using var cont = await http.PostAsync($"channels/{channel.Id}/continue", null);
        Assert.Equal(HttpStatusCode.NoContent, cont.StatusCode);

        await channel.Destroyed.WaitAsync(Timeout);
        Assert.Equal(16, channel.HangupCause);
        Assert.True(channel.HandoverTimestamp >= channel.StasisStartTimestamp);
    }

    private static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    private Uri EventsUri(string app, string apiKey) =>
        new($"ws://127.0.0.1:{_sim.Port}/ari/events?app={app}&subscribeAll=false&api_key={apiKey}");

    private static string? Type(JsonElement e) => e.GetProperty("type").GetString();

    private static string[] Names(JsonElement e) => [.. e.EnumerateObject().Select(p => p.Name)];

    private static void AssertAsteriskTimestamp(string? value)
    {
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$", value);
        Assert.True(DateTimeOffset.TryParseExact(value, "yyyy-MM-dd'T'HH:mm:ss.fff'+0000'", CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal, out _));
    }

    /// <summary>An ARI events WebSocket as a client app sees it.</summary>
    private sealed class EventSocket : IAsyncDisposable
    {
        private readonly ClientWebSocket _ws = new();

        public static async Task<EventSocket> ConnectAsync(Sim sim, string app)
        {
            var socket = new EventSocket();
            var uri = new Uri($"ws://127.0.0.1:{sim.Port}/ari/events?app={app}&subscribeAll=false&api_key=router:secret");
            await socket._ws.ConnectAsync(uri, CancellationToken.None);
            await sim.WaitForAppAsync(app, Timeout);
            return socket;
        }

        public async Task<JsonElement> NextAsync()
        {
            using var cts = new CancellationTokenSource(Timeout);
            return await ReceiveAsync(cts.Token);
        }

        public async Task AssertSilentAsync()
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
            try
            {
                var unexpected = await ReceiveAsync(cts.Token);
                Assert.Fail($"Unexpected event {unexpected}");
            }
            catch (OperationCanceledException)
            {
                // Silence is what we want.
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_ws.State == WebSocketState.Open)
            {
                using var cts = new CancellationTokenSource(Timeout);
                await _ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
            }

            _ws.Dispose();
        }

        private async Task<JsonElement> ReceiveAsync(CancellationToken ct)
        {
            var buffer = new byte[8192];
            using var message = new MemoryStream();
            WebSocketReceiveResult result;
            do
            {
                result = await _ws.ReceiveAsync(buffer, ct);
                message.Write(buffer, 0, result.Count);
            }
            while (!result.EndOfMessage);

            Assert.Equal(WebSocketMessageType.Text, result.MessageType);
            using var doc = JsonDocument.Parse(message.ToArray());
            return doc.RootElement.Clone();
        }
    }
}
