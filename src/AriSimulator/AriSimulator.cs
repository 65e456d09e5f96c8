using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CallRouter.AriSimulator;

/// <summary>An in-process stand-in for Asterisk's ARI: real HTTP and WebSocket on 127.0.0.1.</summary>
public sealed class AriSimulator : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SimulatorCore _core;
    private readonly RestEndpoints _rest;
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    private AriSimulator(WebApplication app, AriSimulatorOptions options)
    {
        _app = app;
        _core = new SimulatorCore(options, _stopping.Token);
        _rest = new RestEndpoints(_core, new BasicAuth(options.User, options.Password), _stopping.Token);
        AsteriskId = options.AsteriskId;
    }

    /// <summary>ARI base address, e.g. http://127.0.0.1:PORT/ari/.</summary>
    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>The asterisk_id sent in events.</summary>
    public string AsteriskId { get; }

    /// <summary>The TCP port actually bound.</summary>
    public int Port { get; private set; }

    /// <summary>Every channel created so far, live and ended.</summary>
    public IReadOnlyCollection<SimChannel> Channels => _core.AllChannels;

    /// <summary>Bridges created through ARI and not destroyed yet.</summary>
    public IReadOnlyCollection<SimBridge> Bridges => _core.Control.LiveBridges;

    /// <summary>Playbacks queued or playing now.</summary>
    public IReadOnlyCollection<SimPlayback> Playbacks => _core.Control.LivePlaybacks;

    /// <summary>Channels not destroyed yet (callers and created channels).</summary>
    public IReadOnlyCollection<SimChannel> LiveChannels => [.. _core.LiveChannels];

    /// <summary>Channels the app has subscribed to (POST /applications/{app}/subscription) and that are not destroyed yet.</summary>
    public IReadOnlyCollection<string> SubscribedChannels(string app) => [.. _core.Subscriptions.ChannelIds(app)];

    /// <summary>Number of REST requests received (the events WebSocket excluded).</summary>
    public int RestRequestCount => _rest.RequestCount;

    /// <summary>Fault injection: chooses a fault (500, reset, slow answer) per REST request; null injects none.</summary>
    public AriFaultInjector? Faults
    {
        get => _rest.Faults;
        set => _rest.Faults = value;
    }

    /// <summary>Faults injected so far.</summary>
    public int FaultCount => _rest.FaultCount;

    /// <summary>Every /ari/events request so far: its query string, and whether it carried an Authorization header.</summary>
    public IReadOnlyCollection<(string Query, bool HeaderAuth)> EventRequests => _rest.EventRequests;

    /// <summary>Starts Kestrel on 127.0.0.1 (port 0 = a free port).</summary>
    public static async Task<AriSimulator> StartAsync(AriSimulatorOptions? options = null, CancellationToken ct = default)
    {
        options ??= new AriSimulatorOptions();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(AriSimulator).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(IPAddress.Loopback, options.Port);
        });

        var app = builder.Build();
        var simulator = new AriSimulator(app, options);
        app.UseWebSockets();
        app.Run(simulator._rest.HandleAsync);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await simulator.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features
            .GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        simulator.Port = new Uri(address).Port;
        simulator.BaseUrl = new Uri($"http://127.0.0.1:{simulator.Port}/ari/");
        return simulator;
    }

    /// <summary>
    /// Simulates the dialplan running Stasis(app, stasisArgs...) on a new Local channel. If no WebSocket is
    /// connected for <paramref name="app"/>, the channel stays in the dialplan with StasisStatus "FAILED".
    /// </summary>
    /// <exception cref="InvalidOperationException">A channel with <paramref name="channelId"/> already exists.</exception>
    public SimChannel Originate(string app, IReadOnlyList<string> stasisArgs, string extension = "1000",
        string callerNumber = "5551234", string callerName = "Alice", string? channelId = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(app);
        ArgumentNullException.ThrowIfNull(stasisArgs);
        return _core.Originate(app, stasisArgs, extension, callerNumber, callerName, channelId);
    }

    /// <summary>A channel by id, live or ended; null if it never existed.</summary>
    public SimChannel? Find(string channelId) => _core.Find(channelId);

    /// <summary>
    /// The caller hangs up: ChannelHangupRequest and StasisEnd if in Stasis, ChannelDestroyed to subscribers.
    /// Does nothing if the channel is already destroyed.
    /// </summary>
    /// <exception cref="ArgumentException">No channel with this id was ever created.</exception>
    public Task HangupAsync(string channelId, int cause = 16)
    {
        var channel = _core.Find(channelId) ?? throw new ArgumentException($"Unknown channel {channelId}", nameof(channelId));
        channel.Hangup(cause, soft: false, destroyCause: cause);
        return Task.CompletedTask;
    }

    /// <summary>Closes the app's WebSockets from the server side; its channels stay parked in Stasis.</summary>
    public void DisconnectApp(string app) => _core.Sockets.Disconnect(app);

    /// <summary>True while at least one WebSocket is connected for the app.</summary>
    public bool IsAppConnected(string app) => _core.Sockets.IsConnected(app);

    /// <summary>Waits until a WebSocket for the app is connected.</summary>
    /// <exception cref="TimeoutException">None connected within <paramref name="timeout"/>.</exception>
    public Task WaitForAppAsync(string app, TimeSpan timeout) => _core.Sockets.WhenConnected(app).WaitAsync(timeout);

    /// <summary>Stops the server; open WebSockets are aborted.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        // Ends the WebSocket loops and the pending auto hang-ups before Kestrel waits for requests to drain.
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }
}
