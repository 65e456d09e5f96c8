using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Operations;
using CallRouter.Router.Observability;
using Microsoft.Extensions.Configuration;
using CallRouter.Router.Postgres;
using CallRouter.Router.Saga;
using CallRouter.Router.Timers;
using CallRouter.Router.Transport;
using MassTransit;
using MassTransit.Middleware;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace CallRouter.Router;

/// <summary>Wires the router: options, timers, the call saga on the router queue, metrics and health.</summary>
public static class RouterExtensions
{
    /// <summary>Where /metrics and /health/* listen unless Http__Urls says otherwise.</summary>
    public const string DefaultHttpUrls = "http://0.0.0.0:9180";

    /// <summary>How long the router tries one node of a cluster before the next.</summary>
    public static readonly TimeSpan ClusterConnectTimeout = TimeSpan.FromSeconds(3);

    public static IHostApplicationBuilder AddRouter(this IHostApplicationBuilder builder)
    {
        // First, so the exporter listens before the bus starts and /health/live answers while it does.
        builder.AddOperationsEndpoint(RouterMetrics.MeterName, DefaultHttpUrls);
        builder.Services.AddSingleton<RouterMetrics>();
        builder.Services.AddSingleton<AdapterClocks>();
        builder.Services.AddSingleton<UnconfirmedResender>();
        builder.Services.AddSingleton<StalledConnectionBreaker>();
        builder.Services.AddSingleton<TallyBatcher>();
        builder.Services.AddConsumeObserver<EndReportObserver>();
        builder.Services.AddOptions<BrokerOptions>().BindConfiguration(BrokerOptions.Section);
        builder.Services.AddOptions<RouterOptions>().BindConfiguration(RouterOptions.Section)
            .Validate(o => o.UnknownCallGrace > TimeSpan.Zero && o.FinishedRetention > TimeSpan.Zero, "grace and retention must be positive")
            .Validate(o => o.StalledSendReconnectAfter >= TimeSpan.Zero, "StalledSendReconnectAfter must not be negative")
            .Validate(o => o.ClaimWindow < o.AdapterFallbackGrace,
                "Router__ClaimWindow must be shorter than Router__AdapterFallbackGrace (the adapters' Adapter__FallbackGrace): "
                + "a decision must reach the adapter before it falls back, or an app told 'accepted' would not get the call")
            .ValidateOnStart();
        builder.Services.AddOptions<PostgresOptions>().BindConfiguration(PostgresOptions.Section);
        builder.Services.AddSingleton(TimeProvider.System);

        var broker = builder.Configuration.GetSection(BrokerOptions.Section).Get<BrokerOptions>() ?? new BrokerOptions();
        var router = builder.Configuration.GetSection(RouterOptions.Section).Get<RouterOptions>() ?? new RouterOptions();
        var postgres = builder.Configuration.GetSection(PostgresOptions.Section).Get<PostgresOptions>() ?? new PostgresOptions();
        var sagasInPostgres = router.SagaRepository == SagaStore.Postgres;

        if (sagasInPostgres || postgres.WriteCdrs)
        {
            builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(PostgresSagaRepository.Tune(postgres.ConnectionString)));
            builder.Services.AddSingleton<DatabaseSchema>();
        }
        if (sagasInPostgres)
        {
            // Registered before MassTransit, so the schema is in place before the first message is taken.
            builder.Services.AddSingleton(sp => new CallSagaStore(sp.GetRequiredService<NpgsqlDataSource>()));
            builder.Services.AddHostedService<SagaTableJanitor>();
            builder.Services.AddSingleton<BrokerCallTimers>();
            builder.Services.AddSingleton<ICallTimers>(sp => sp.GetRequiredService<BrokerCallTimers>());
        }
        else
        {
            builder.Services.AddSingleton<InProcessCallTimers>();
            builder.Services.AddSingleton<ICallTimers>(sp => sp.GetRequiredService<InProcessCallTimers>());
            // One repository for both ways in: the router queue and, for timers, the mediator (no broker round trip).
            builder.Services.AddSingleton(_ => new InMemorySagaRepository<CallState>());
            builder.Services.AddSingleton<ISagaRepository<CallState>>(sp => sp.GetRequiredService<InMemorySagaRepository<CallState>>());
            builder.Services.AddSingleton<ILoadSagaRepository<CallState>>(sp => sp.GetRequiredService<InMemorySagaRepository<CallState>>());
            builder.Services.AddMediator(mediator => mediator.ConfigureMediator((context, cfg) =>
                cfg.StateMachineSaga(context.GetRequiredService<CallStateMachine>(), context.GetRequiredService<ISagaRepository<CallState>>())));
        }
        builder.Services.AddSingleton<CallStateMachine>();
        builder.Services.AddSingleton<CallStateDefinition>();
        if (postgres.WriteCdrs)
            builder.Services.AddHostedService<CdrWriter>();
        var ownership = new AppOwnership(router.AppOwners);

        builder.Services.Configure<MassTransitHostOptions>(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromSeconds(30);
            o.StopTimeout = TimeSpan.FromSeconds(10);
        });
        // Several routers race for the same call on purpose: a lost race is a ConcurrencyException that the retry
        // resolves at once, and MassTransit would log each one as a warning with its stack trace (R-RETRY). Faults
        // (R-FAULT) are errors and still logged.
        if (sagasInPostgres)
            builder.Logging.AddFilter("MassTransit.ReceiveTransport", LogLevel.Error);
        builder.Services.AddMassTransit(bus =>
        {
            // MassTransit's own bus health check is /health/ready's "broker".
            bus.ConfigureHealthCheckOptions(o =>
            {
                o.Name = "broker";
                o.Tags.Clear();
                o.Tags.Add(OperationsExtensions.ReadyTag);
            });
            bus.AddConsumer<InvalidClaimConsumer>();
            // An answer or decision lost with the router's node is sent again on the next (the claim may be acked already).
            bus.AddSendObserver(sp => sp.GetRequiredService<UnconfirmedResender>());
            // In a cluster, a channel a partition left unable to enqueue is replaced with the whole connection.
            if (broker.UsesQuorumQueues)
                bus.AddSendObserver(sp => sp.GetRequiredService<StalledConnectionBreaker>());
            bus.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(broker.Host, (ushort)broker.Port, broker.VirtualHost, h =>
                {
                    h.Username(broker.User);
                    h.Password(broker.Password);
                    // A cluster always confirms: a reply or decision still in flight when its node is lost must fail the
                    // consume, so the message is not acked and is handled again on another node (else the claim goes unanswered).
                    h.PublisherConfirmation = router.PublisherConfirms || broker.UsesQuorumQueues;
                    h.Heartbeat(broker.Heartbeat);
                    // A cluster: MassTransit connects to one of the nodes and cycles through them when it loses it.
                    if (broker.Nodes() is { Count: > 1 } nodes)
                    {
                        h.UseCluster(c =>
                        {
                            foreach (var (host, port) in nodes)
                                c.Node($"{host}:{port}");
                        });
                        // A node cut off by a partition does not refuse a connection, it never answers: move on soon.
                        h.RequestedConnectionTimeout(ClusterConnectTimeout);
                    }
                });
                // Ours is the only deserializer: MassTransit's envelope one (application/vnd.masstransit+json) would
                // let an app's delivery past the claim reading and the ownership check.
                var json = new PlainClaimSerializerFactory(ownership);
                cfg.ClearSerialization();
                cfg.AddSerializer(json);
                cfg.AddDeserializer(json, isDefault: true);
                cfg.ConfigureJsonSerializerOptions(json =>
                {
                    json.WriteIndented = false;
                    return json;
                });

                cfg.ReceiveEndpoint(Topology.RouterQueue, e =>
                {
                    e.ConfigureConsumeTopology = false;
                    e.PrefetchCount = router.EffectivePrefetchCount;
                    if (broker.UsesQuorumQueues)
                        e.SetQuorumQueue();
                    e.ConcurrentMessageLimit = router.ConcurrentMessageLimit;
                    e.Bind(Topology.BroadcastExchange, b =>
                    {
                        b.ExchangeType = "topic";
                        b.RoutingKey = Topology.RouterBroadcastKey;
                    });
                    e.Bind(Topology.EventExchange, b => b.ExchangeType = "fanout");
                    e.Bind(Topology.ClaimExchange, b => b.ExchangeType = "fanout");

                    if (sagasInPostgres)
                        e.UseFilter(new TimerHopFilter(context.GetRequiredService<BrokerCallTimers>()));
                    e.ConfigureError(x =>
                    {
                        // A claim that still failed after the retries is answered "unavailable" before it is parked.
                        x.UseFilter(new UnavailableReplyFilter(context, context.GetRequiredService<RouterMetrics>(),
                            context.GetRequiredService<ILoggerFactory>().CreateLogger<UnavailableReplyFilter>()));
                        x.UseFilter(new GenerateFaultFilter());
                        x.UseFilter(new ParkFilter(Topology.RouterErrorQueue, broker.DurableQueueArguments()));
                    });
                    e.ConfigureDeadLetter(x => x.UseFilter(new ParkFilter(Topology.RouterSkippedQueue, broker.DurableQueueArguments())));
                    // The saga's policies (retries, outbox, partitioning) come from CallStateDefinition in both modes.
                    // The repository is ours (PostgreSQL) or shared with the timers' mediator (in memory), so the saga is
                    // connected by hand, with the definition applied as MassTransit's ConfigureSaga would apply it.
                    ISagaDefinition<CallState> definition = context.GetRequiredService<CallStateDefinition>();
                    e.StateMachineSaga(context.GetRequiredService<CallStateMachine>(),
                        sagasInPostgres
                            ? PostgresSagaRepository.Create(context.GetRequiredService<NpgsqlDataSource>())
                            : context.GetRequiredService<ISagaRepository<CallState>>(),
                        saga => definition.Configure(e, saga, context));
                    e.ConfigureConsumer<InvalidClaimConsumer>(context);
                });
            });
        });
        // After the bus, so the timers stop first (hosts stop services in reverse order): a timer firing into a bus that
        // has stopped would only log a TransportUnavailableException at every SIGTERM.
        if (!sagasInPostgres)
            builder.Services.AddHostedService(sp => sp.GetRequiredService<InProcessCallTimers>());
        // After the bus too, so the tallies still queued leave before it stops.
        builder.Services.AddHostedService(sp => sp.GetRequiredService<TallyBatcher>());
        return builder;
    }
}
