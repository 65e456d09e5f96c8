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

    /// <summary>True while the event WebSocket is connected.</summary>
    public bool IsConnected => _connected;

    /// <summary>Connections made after the first one.</summary>
    public long Reconnects => Math.Max(0, Interlocked.Read(ref _connections) - 1);

    /// <summary>Runs until cancelled. <paramref name="onConnected"/> runs after every (re)connect, before events are read.</summary>
    public async Task Run(Func<DateTimeOffset, CancellationToken, Task> onConnected, Func<AriEvent, Task> onEvent, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                using var socket = new ClientWebSocket();
                await socket.ConnectAsync(EventsUri(), cancellationToken);
                var connectedAt = DateTimeOffset.UtcNow;
                delay = TimeSpan.FromMilliseconds(200);
                Interlocked.Increment(ref _connections);
                _connected = true;
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
            _connected = false;
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

    private Uri EventsUri()
    {
        var ws = new UriBuilder(new Uri(_options.AriUrl, "events"))
        {
            Scheme = _options.AriUrl.Scheme == "https" ? "wss" : "ws",
            Query = $"app={Uri.EscapeDataString(_options.App)}&subscribeAll=false&api_key={Uri.EscapeDataString(_options.AriUser)}:{Uri.EscapeDataString(_options.AriPassword)}",
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
