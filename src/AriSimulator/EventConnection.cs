using System.Net.WebSockets;
using System.Threading.Channels;

namespace CallRouter.AriSimulator;

/// <summary>A serialized event ready to send; <see cref="StasisStartOf"/> gets its timestamp stamped on send.</summary>
internal readonly record struct OutFrame(byte[] Data, SimChannel? StasisStartOf);

/// <summary>
/// One /ari/events WebSocket. Frames go through a queue with a single sender loop, so concurrent
/// publishers never interleave frames and each publisher's order is kept.
/// </summary>
internal sealed class EventConnection(WebSocket socket)
{
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(2);

    private readonly Channel<OutFrame> _queue =
        Channel.CreateUnbounded<OutFrame>(new UnboundedChannelOptions { SingleReader = true });

    public void Enqueue(OutFrame frame) => _queue.Writer.TryWrite(frame);

    /// <summary>Server-side close: pending frames are still sent, then a close frame.</summary>
    public void Close() => _queue.Writer.TryComplete();

    /// <summary>Runs until the client or the server closes the socket, or <paramref name="stopping"/> fires.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var send = SendLoopAsync(cts.Token);
        var receive = ReceiveLoopAsync(cts.Token);
        var first = await Task.WhenAny(send, receive).ConfigureAwait(false);

        // The client closed: let the sender finish the close handshake. The server closed: wait for the client's answer.
        _queue.Writer.TryComplete();
        var other = first == send ? receive : send;
        if (await Task.WhenAny(other, Task.Delay(CloseGrace, stopping)).ConfigureAwait(false) != other)
        {
            socket.Abort();
            await cts.CancelAsync().ConfigureAwait(false);
        }

        await other.ConfigureAwait(false);
    }

    private async Task SendLoopAsync(CancellationToken ct)
    {
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                while (reader.TryRead(out var frame))
                {
                    frame.StasisStartOf?.MarkStasisStartSent();
                    await socket.SendAsync(frame.Data, WebSocketMessageType.Text, endOfMessage: true, ct).ConfigureAwait(false);
                }
            }

            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            socket.Abort();
        }
    }

    private async Task ReceiveLoopAsync(CancellationToken ct)
    {
        var buffer = new byte[1024];
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, ct).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            socket.Abort();
        }
    }
}
