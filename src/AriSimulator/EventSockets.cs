using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;

namespace CallRouter.AriSimulator;

/// <summary>The /ari/events WebSockets, grouped by application name.</summary>
internal sealed class EventSockets
{
    private readonly ConcurrentDictionary<string, AppSockets> _apps = new(StringComparer.Ordinal);

    public bool IsConnected(string app) => ConnectionsOf(app).Length > 0;

    /// <summary>True once the app has connected at least once (Asterisk keeps it registered).</summary>
    public bool IsKnown(string app) => _apps.TryGetValue(app, out var sockets) && sockets.EverConnected;

    public EventConnection[] ConnectionsOf(string app) =>
        _apps.TryGetValue(app, out var sockets) ? sockets.Connections : [];

    public Task WhenConnected(string app) => Get(app).WhenConnected;

    /// <summary>Closes every socket of the app; it counts as disconnected at once.</summary>
    public void Disconnect(string app)
    {
        foreach (var connection in Get(app).RemoveAll())
        {
            connection.Close();
        }
    }

    /// <summary>Upgrades an authenticated /ari/events request and serves it until it closes.</summary>
    public async Task AcceptAsync(HttpContext http, CancellationToken stopping)
    {
        var apps = http.Request.Query["app"].ToString()
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (apps.Length == 0)
        {
            await HttpJson.WriteAsync(http, StatusCodes.Status400BadRequest, HttpJson.MissingApp).ConfigureAwait(false);
            return;
        }

        if (!http.WebSockets.IsWebSocketRequest)
        {
            await HttpJson.WriteAsync(http, StatusCodes.Status400BadRequest, HttpJson.UpgradeRequired).ConfigureAwait(false);
            return;
        }

        using var socket = await http.WebSockets.AcceptWebSocketAsync().ConfigureAwait(false);
        var connection = new EventConnection(socket);
        foreach (var app in apps)
        {
            Get(app).Add(connection);
        }

        try
        {
            await connection.RunAsync(stopping).ConfigureAwait(false);
        }
        finally
        {
            foreach (var app in apps)
            {
                Get(app).Remove(connection);
            }
        }
    }

    private AppSockets Get(string app) => _apps.GetOrAdd(app, _ => new AppSockets());

    /// <summary>The sockets of one app: a copy-on-write array, so publishers read it without locking.</summary>
    private sealed class AppSockets
    {
        private readonly Lock _gate = new();
        private volatile EventConnection[] _connections = [];
        private TaskCompletionSource _connected = NewSignal();

        public EventConnection[] Connections => _connections;

        public bool EverConnected { get; private set; }

        public Task WhenConnected
        {
            get
            {
                lock (_gate)
                {
                    return _connected.Task;
                }
            }
        }

        public void Add(EventConnection connection)
        {
            lock (_gate)
            {
                _connections = [.. _connections, connection];
                EverConnected = true;
                _connected.TrySetResult();
            }
        }

        public void Remove(EventConnection connection)
        {
            lock (_gate)
            {
                _connections = [.. _connections.Where(c => c != connection)];
                ResetSignalIfEmpty();
            }
        }

        public EventConnection[] RemoveAll()
        {
            lock (_gate)
            {
                var removed = _connections;
                _connections = [];
                ResetSignalIfEmpty();
                return removed;
            }
        }

        private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

        private void ResetSignalIfEmpty()
        {
            if (_connections.Length == 0 && _connected.Task.IsCompleted)
            {
                _connected = NewSignal();
            }
        }
    }
}
