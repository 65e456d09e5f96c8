using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Demo;
using CallRouter.Messages;
using CallRouter.Operations;
using CallRouter.Router;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit;

namespace CallRouter.Tests.Infrastructure;

/// <summary>The whole path on real parts: ARI simulator (HTTP + WebSocket), adapter and router hosts, RabbitMQ, claimant apps.</summary>
public sealed class RoutingStack : IAsyncLifetime
{
    public const string StasisApp = "call-router";
    public const string Node = "test-node";

    private readonly List<ClaimantApp> _apps = [];

    public TestBroker Broker { get; private set; } = null!;
    public AriSimulator.AriSimulator Ari { get; private set; } = null!;
    public IHost? Router { get; private set; }
    public IHost? Adapter { get; private set; }

    /// <summary>
    /// For convenience the stack's own broker user (guest) owns every app name (Router:AppOwners:guest=.*), so apps
    /// started with <see cref="AddApp"/> may share it; tests of the ownership rule use apps with their own users.
    /// </summary>
    public bool StackUserOwnsEveryApp { get; set; } = true;

    /// <summary>Runs after the vhost is made and before the router and adapter start (e.g. to provision broker definitions).</summary>
    public Func<TestBroker, Task>? Prepare { get; set; }

    /// <summary>Where the stack's broker comes from: by default a virtual host of its own on the shared broker.</summary>
    public Func<Task<TestBroker>> BrokerFactory { get; set; } = TestBroker.Create;

    /// <summary>Router settings a test may change before InitializeAsync. CDRs are off unless a test gives a database.</summary>
    public Dictionary<string, string?> RouterSettings { get; } = new() { ["Postgres:WriteCdrs"] = "false" };

    /// <summary>False: InitializeAsync starts no in-process router (the test runs router processes).</summary>
    public bool RouterInProcess { get; set; } = true;

    public AriSimulatorOptions? SimulatorOptions { get; set; }

    /// <summary>Extra logging for adapters this stack starts (e.g. a provider that keeps every line for a test to read).</summary>
    public Action<ILoggingBuilder>? ConfigureAdapterLogging { get; set; }

    /// <summary>Service overrides for the in-process router / adapters (e.g. a skewed <see cref="TimeProvider"/>).</summary>
    public Action<IServiceCollection>? ConfigureRouterServices { get; set; }

    public Action<IServiceCollection>? ConfigureAdapterServices { get; set; }

    /// <summary>Routers write CDRs to <paramref name="database"/>; with <paramref name="sagas"/>, saga state lives there too.</summary>
    public void UsePostgres(TestDatabase database, bool sagas)
    {
        RouterSettings["Postgres:ConnectionString"] = database.ConnectionString;
        RouterSettings["Postgres:WriteCdrs"] = "true";
        if (sagas)
            RouterSettings["Router:SagaRepository"] = "Postgres";
    }

    /// <summary>Adapter settings a test class may change before InitializeAsync (through its own fixture subclass).</summary>
    public Dictionary<string, string?> AdapterSettings { get; } = new()
    {
        ["Adapter:App"] = StasisApp,
        ["Adapter:DefaultTimeoutMs"] = "2000",
        ["Adapter:FallbackGrace"] = "00:00:00.500",
        ["Adapter:AppLivenessTimeout"] = "00:00:05",
        // The stack's apps heartbeat every second: a second after it starts, an adapter knows every live app.
        ["Adapter:AppWarmup"] = "00:00:01",
        // Admission control off: floods of bad input (FuzzTests) and 10,000-call races on a loaded machine would
        // rightly shed calls these tests expect to be routed. AdmissionTests and OpenCallsCapTests turn it on.
        ["Adapter:ShedAboveRouterBacklog"] = "0",
        ["Adapter:MaxOpenCalls"] = "0",
    };

    public async Task InitializeAsync()
    {
        ThreadPool.SetMinThreads(64, 64);
        Broker = await BrokerFactory();
        if (Prepare is not null)
            await Prepare(Broker);
        Ari = await AriSimulator.AriSimulator.StartAsync(SimulatorOptions);
        if (RouterInProcess)
            await StartRouter();
        await StartAdapter();
    }

    public async Task StartRouter()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(BrokerSettings().Concat(HttpSettings).Concat(OwnerSettings()).Concat(RouterSettings));
        builder.Logging.AddConsole().SetMinimumLevel(LogLevel.Warning);
        builder.AddRouter();
        ConfigureRouterServices?.Invoke(builder.Services);
        Router = builder.Build();
        try
        {
            await Router.StartAsync();
        }
        catch
        {
            Router.Dispose(); // refused to start (e.g. invalid options): nothing to stop later
            Router = null;
            throw;
        }
    }

    public async Task StopRouter()
    {
        if (Router is null)
            return;
        await Router.StopAsync();
        Router.Dispose();
        Router = null;
    }

    public async Task StartAdapter() => Adapter = await StartAdapterFor(Ari, Node);

    /// <summary>
    /// An adapter for one Asterisk (simulator) with its own node id, started and connected to ARI; unless
    /// <paramref name="untilReady"/> is false, also past its warm-up (it knows which apps are live) with the apps already added live to it.
    /// </summary>
    public async Task<IHost> StartAdapterFor(AriSimulator.AriSimulator ari, string node, bool untilReady = true)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(BrokerSettings().Concat(HttpSettings).Concat(OwnerSettings()).Concat(AdapterSettings)
            .Append(new("Adapter:AriUrl", ari.BaseUrl.ToString())).Append(new("Adapter:Node", node)));
        builder.Logging.AddConsole().SetMinimumLevel(LogLevel.Warning);
        ConfigureAdapterLogging?.Invoke(builder.Logging);
        builder.AddAsteriskAdapter();
        ConfigureAdapterServices?.Invoke(builder.Services);
        var adapter = builder.Build();
        await adapter.StartAsync();
        await ari.WaitForAppAsync(StasisApp, TimeSpan.FromSeconds(15));
        if (!untilReady)
            return adapter;
        var live = adapter.Services.GetRequiredService<LiveApps>();
        await Eventually.True(() => live.Knows, TimeSpan.FromSeconds(30), $"the adapter on {node} never finished learning the live apps");
        foreach (var app in _apps)
            await Eventually.True(() => live.IsLive(app.Name), TimeSpan.FromSeconds(10), $"app {app.Name} never became live on {node}");
        return adapter;
    }

    public async Task StopAdapter()
    {
        if (Adapter is null)
            return;
        await Adapter.StopAsync();
        Adapter.Dispose();
        Adapter = null;
    }

    /// <summary>Starts an app (as the stack's broker user, or as <paramref name="user"/>) and waits until the adapter counts it as live.</summary>
    public async Task<ClaimantApp> AddApp(string name, bool autoClaim = true, BrokerOptions? user = null, DialplanTarget? target = null)
    {
        var app = new ClaimantApp(user ?? Broker.Options, name) { AutoClaim = autoClaim, Target = target };
        await app.Start();
        _apps.Add(app);
        await WaitUntilLive(name);
        return app;
    }

    public async Task RemoveApp(ClaimantApp app)
    {
        _apps.Remove(app);
        await app.DisposeAsync();
    }

    public async Task WaitUntilLive(string app)
    {
        var live = Adapter!.Services.GetRequiredService<LiveApps>();
        await Eventually.True(() => live.IsLive(app), TimeSpan.FromSeconds(10), $"app {app} never became live");
    }

    public async Task WaitUntilGone(string app)
    {
        var live = Adapter!.Services.GetRequiredService<LiveApps>();
        await Eventually.True(() => !live.IsLive(app), TimeSpan.FromSeconds(10), $"app {app} is still live");
    }

    /// <summary>Waits until the in-process router (sagas in memory) holds the call in the given saga state.</summary>
    public async Task WaitForSagaState(Guid callId, string state)
    {
        var sagas = Router!.Services.GetRequiredService<MassTransit.ILoadSagaRepository<CallRouter.Router.Saga.CallState>>();
        await Eventually.True(async () => (await sagas.Load(callId))?.CurrentState == state, TimeSpan.FromSeconds(10),
            $"call {callId} never reached saga state {state}");
    }

    /// <summary>A router as its own process, with this stack's broker and router settings; returns once it consumes the router queue.</summary>
    public async Task<RouterProcess> StartRouterProcess(string name)
    {
        var consumers = await Broker.ConsumerCount(Topology.RouterQueue);
        var router = RouterProcess.Start(name, BrokerSettings().Concat(HttpSettings).Concat(OwnerSettings()).Concat(RouterSettings));
        await Eventually.True(async () => await Broker.ConsumerCount(Topology.RouterQueue) > consumers, TimeSpan.FromSeconds(30),
            $"router process {name} never consumed the router queue");
        return router;
    }
    /// <summary>Many stacks share this process: each router and adapter serves /metrics and /health on a free loopback port.</summary>
    private static readonly KeyValuePair<string, string?>[] HttpSettings = [new("Http:Urls", "http://127.0.0.1:0")];

    /// <summary>Base address of a host's operations endpoint (/metrics, /health/live, /health/ready).</summary>
    public static Uri HttpAddress(IHost host) => host.Services.GetRequiredService<OperationsEndpoint>().Addresses.Single();

    private IEnumerable<KeyValuePair<string, string?>> BrokerSettings() =>
    [
        new("Broker:Host", Broker.Options.Host),
        new("Broker:Port", Broker.Options.Port.ToString()),
        new("Broker:VirtualHost", Broker.Options.VirtualHost),
        new("Broker:User", Broker.Options.User),
        new("Broker:Password", Broker.Options.Password),
        new("Broker:Hosts", Broker.Options.Hosts),
        new("Broker:QueueType", Broker.Options.QueueType),
    ];

    private IEnumerable<KeyValuePair<string, string?>> OwnerSettings() =>
        StackUserOwnsEveryApp ? [new($"{AppOwnership.Section}:{Broker.Options.User}", ".*")] : [];

    public async Task DisposeAsync()
    {
        foreach (var app in _apps)
            await app.DisposeAsync();
        await StopAdapter();
        await StopRouter();
        await Ari.DisposeAsync();
        await Broker.DisposeAsync();
    }
}

/// <summary>Polls a condition until it holds or the time is up (for state that has no event to await).</summary>
public static class Eventually
{
    public static async Task True(Func<bool> condition, TimeSpan within, string failure)
    {
        var deadline = DateTime.UtcNow + within;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException(failure);
            await Task.Delay(20);
        }
    }

    /// <summary>The same, with a failure message made when it fails (so it can say what was last seen).</summary>
    public static Task True(Func<bool> condition, TimeSpan within, Func<string> failure) =>
        True(() => Task.FromResult(condition()), within, failure);

    /// <summary>The same for a condition that has to be awaited (e.g. a question to the broker).</summary>
    public static Task True(Func<Task<bool>> condition, TimeSpan within, string failure) => True(condition, within, () => failure);

    /// <summary>The same, with a failure message made when it fails (so it can say what was last seen).</summary>
    public static async Task True(Func<Task<bool>> condition, TimeSpan within, Func<string> failure)
    {
        var deadline = DateTime.UtcNow + within;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException(failure());
            await Task.Delay(50);
        }
    }
}
