using CallRouter.Messages;
using Microsoft.Extensions.Configuration;
using CallRouter.Router.Saga;
using CallRouter.Router.Timers;
using CallRouter.Router.Transport;
using MassTransit;
using MassTransit.Middleware;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CallRouter.Router;

/// <summary>Wires the router: options, timers, the call saga on the router queue.</summary>
public static class RouterExtensions
{
    public static IHostApplicationBuilder AddRouter(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<BrokerOptions>().BindConfiguration(BrokerOptions.Section);
        builder.Services.AddOptions<RouterOptions>().BindConfiguration(RouterOptions.Section)
            .Validate(o => o.UnknownCallGrace > TimeSpan.Zero && o.FinishedRetention > TimeSpan.Zero, "grace and retention must be positive")
            .ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<InProcessCallTimers>();
        builder.Services.AddSingleton<ICallTimers>(sp => sp.GetRequiredService<InProcessCallTimers>());
        builder.Services.AddHostedService(sp => sp.GetRequiredService<InProcessCallTimers>());

        var broker = builder.Configuration.GetSection(BrokerOptions.Section).Get<BrokerOptions>() ?? new BrokerOptions();
        var router = builder.Configuration.GetSection(RouterOptions.Section).Get<RouterOptions>() ?? new RouterOptions();
        var ownership = new AppOwnership(router.AppOwners);

        builder.Services.Configure<MassTransitHostOptions>(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromSeconds(30);
            o.StopTimeout = TimeSpan.FromSeconds(10);
        });
        builder.Services.AddMassTransit(bus =>
        {
            bus.AddSagaStateMachine<CallStateMachine, CallState>().InMemoryRepository();
            bus.AddConsumer<InvalidClaimConsumer>();
            bus.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(broker.Host, (ushort)broker.Port, broker.VirtualHost, h =>
                {
                    h.Username(broker.User);
                    h.Password(broker.Password);
                    h.PublisherConfirmation = router.PublisherConfirms;
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
                    e.PrefetchCount = router.PrefetchCount;
                    e.ConcurrentMessageLimit = router.ConcurrentMessageLimit;
                    e.Bind(Topology.BroadcastExchange, b =>
                    {
                        b.ExchangeType = "topic";
                        b.RoutingKey = Topology.RouterBroadcastKey;
                    });
                    e.Bind(Topology.EventExchange, b => b.ExchangeType = "fanout");
                    e.Bind(Topology.ClaimExchange, b => b.ExchangeType = "fanout");

                    e.UseMessageRetry(r =>
                    {
                        r.Handle<ConcurrencyException>();
                        r.Intervals(0, 5, 10, 20, 50, 100, 200);
                    });
                    e.ConfigureError(x =>
                    {
                        x.UseFilter(new GenerateFaultFilter());
                        x.UseFilter(new ParkFilter(Topology.RouterErrorQueue));
                    });
                    e.ConfigureDeadLetter(x => x.UseFilter(new ParkFilter(Topology.RouterSkippedQueue)));
                    e.UseInMemoryOutbox(context);
                    e.ConfigureSaga<CallState>(context);
                    e.ConfigureConsumer<InvalidClaimConsumer>(context);
                });
            });
        });
        return builder;
    }
}
