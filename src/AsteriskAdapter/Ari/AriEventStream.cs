using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Ari;

/// <summary>The ARI WebSocket for one app: connects, reconnects with back-off, and hands each event to the handler in order.</summary>
public sealed class AriEventStream(IOptions<AdapterOptions> options, ILogger<AriEventStream> logger)
{
    private readonly AdapterOptions _options = options.Value;
    private long _connections;
    private volatile bool _connected;
    private long _disconnectedTicks;
    private long _downSince;

    /// <summary>True while the event WebSocket is connected.</summary>
    public bool IsConnected => _connected;

    /// <summary>Connections made after the first one.</summary>
    public long Reconnects => Math.Max(0, Interlocked.Read(ref _connections) - 1);

    /// <summary>How long the WebSocket has been down since it first connected (the gaps in which calls find no app).</summary>
    public TimeSpan DisconnectedTime
    {
        get
        {
            var since = Interlocked.Read(ref _downSince);
            var current = since == 0 ? 0 : Environment.TickCount64 - since;
            return TimeSpan.FromMilliseconds(Interlocked.Read(ref _disconnectedTicks) + current);
        }
    }

    private void Up()
    {
        var since = Interlocked.Exchange(ref _downSince, 0);
        if (since != 0)
            Interlocked.Add(ref _disconnectedTicks, Environment.TickCount64 - since);
        _connected = true;
    }

    private void Down()
    {
        if (_connected)
            Interlocked.CompareExchange(ref _downSince, Environment.TickCount64, 0);
        _connected = false;
    }

    /// <summary>Runs until cancelled. <paramref name="onConnected"/> runs after every (re)connect, before events are read.</summary>
    public async Task Run(Func<DateTimeOffset, CancellationToken, Task> onConnected, Func<AriEvent, Task> onEvent, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                using var socket = new ClientWebSocket();
                // Credentials in a header, never in the URL (where proxies and Asterisk's own logs would keep them).
                socket.Options.SetRequestHeader("Authorization", AriClient.BasicAuthorization(_options).ToString());
                await socket.ConnectAsync(EventsUri(_options), cancellationToken);
                var connectedAt = DateTimeOffset.UtcNow;
                delay = TimeSpan.FromMilliseconds(200);
                Interlocked.Increment(ref _connections);
                Up();
                logger.LogInformation("ARI events connected for app {App}", _options.App);
                await onConnected(connectedAt, cancellationToken);
                await ReadEvents(socket, onEvent, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                _connected = false;
                return;
            }
            catch (Exception exception)
            {
                logger.LogWarning("ARI events for {App} unavailable ({Error}); retrying in {Delay} ms", _options.App, exception.Message, delay.TotalMilliseconds);
            }
            Down();
            try
            {
                await Task.Delay(delay, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 5000));
        }
    }

    /// <summary>The events WebSocket address: app and subscription only; the credentials go in the Authorization header.</summary>
    public static Uri EventsUri(AdapterOptions options)
    {
        var ws = new UriBuilder(new Uri(options.AriUrl, "events"))
        {
            Scheme = options.AriUrl.Scheme == "https" ? "wss" : "ws",
            Query = $"app={Uri.EscapeDataString(options.App)}&subscribeAll=false",
        };
        return ws.Uri;
    }

    private async Task ReadEvents(ClientWebSocket socket, Func<AriEvent, Task> onEvent, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        while (socket.State == WebSocketState.Open)
        {
            buffer.ResetWrittenCount();
            ValueWebSocketReceiveResult result;
            do
            {
                result = await socket.ReceiveAsync(buffer.GetMemory(8 * 1024), cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                    throw new WebSocketException("ARI closed the event socket");
                buffer.Advance(result.Count);
            }
            while (!result.EndOfMessage);

            AriEvent ariEvent;
            try
            {
                using var document = JsonDocument.Parse(buffer.WrittenMemory);
                ariEvent = AriEvent.Parse(document.RootElement);
            }
            catch (JsonException exception)
            {
                logger.LogWarning("Skipped an ARI event that is not JSON: {Error}", exception.Message);
                continue;
            }
            await onEvent(ariEvent);
        }
    }
}
