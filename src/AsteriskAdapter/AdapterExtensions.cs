using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.AsteriskAdapter.Control;
using CallRouter.AsteriskAdapter.Observability;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Operations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CallRouter.AsteriskAdapter;

/// <summary>Wires the adapter for one Asterisk: ARI events and REST, the broker, the dispatcher between them, metrics and health.</summary>
public static class AdapterExtensions
{
    /// <summary>Where /metrics and /health/* listen unless Http__Urls says otherwise.</summary>
    public const string DefaultHttpUrls = "http://0.0.0.0:9181";

    public static IHostApplicationBuilder AddAsteriskAdapter(this IHostApplicationBuilder builder)
    {
        // First, so the exporter listens before calls flow and /health/live answers while the adapter connects.
        builder.AddOperationsEndpoint(AdapterMetrics.MeterName, DefaultHttpUrls)
            .AddCheck<BrokerHealthCheck>("broker", tags: [OperationsExtensions.ReadyTag])
            .AddCheck<AriHealthCheck>("ari", tags: [OperationsExtensions.ReadyTag])
            .AddCheck<AppsHealthCheck>("apps", tags: [OperationsExtensions.ReadyTag]);
        builder.Services.AddSingleton<AdapterMetrics>();
        builder.Services.AddOptions<BrokerOptions>().BindConfiguration(BrokerOptions.Section);
        builder.Services.AddOptions<AdapterOptions>().BindConfiguration(AdapterOptions.Section)
            .Validate(o => Wire.IsValidAppName(o.Node.Replace('.', '-')), "Adapter:Node must be letters, digits, '-', '_' or '.'")
            .Validate(o => o.DefaultTimeoutMs is > 0 and <= BroadcastOptions.MaxTimeoutMs, "Adapter:DefaultTimeoutMs must be 1..60000")
            .Validate(o => o.AriUrl.AbsolutePath.EndsWith('/'), "Adapter:AriUrl must end with /ari/")
            .Validate(o => o.MaxAriConnections >= 1 && o.AriBackgroundConcurrency >= 1, "Adapter:MaxAriConnections and Adapter:AriBackgroundConcurrency must be at least 1")
            .Validate(o => o.AriBackgroundQueue >= 0, "Adapter:AriBackgroundQueue must be 0 or more")
            .Validate(o => o.DraftCheckAfter > TimeSpan.Zero, "Adapter:DraftCheckAfter must be above 0")
            .ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<AriClient>();
        builder.Services.AddSingleton<AriEventStream>();
        builder.Services.AddSingleton<AdapterBroker>();
        builder.Services.AddSingleton<BrokerOutbox>();
        builder.Services.AddSingleton<RouterBacklog>();
        builder.Services.AddSingleton<CallHandover>();
        builder.Services.AddSingleton<LiveApps>();
        var owners = builder.Configuration.GetSection(AppOwnership.Section).Get<Dictionary<string, string>>();
        builder.Services.AddSingleton(new AppOwnership(owners));
        builder.Services.AddSingleton<HeartbeatReader>();
        builder.Services.AddSingleton<AppFilters>();
        builder.Services.AddSingleton<ReleasedChannels>();
        builder.Services.AddSingleton<CallBook>();
        builder.Services.AddSingleton<CallRecorder>();
        builder.Services.AddSingleton<BackgroundWork>();
        builder.Services.AddSingleton<AriControlClient>();
        builder.Services.AddSingleton<ControlBroker>();
        builder.Services.AddSingleton<ControlSessions>();
        builder.Services.AddSingleton<ControlMetrics>();
        builder.Services.AddSingleton<CallControl>();
        builder.Services.AddSingleton<ControlCommandHandler>();
        builder.Services.AddSingleton<CallEndings>();
        builder.Services.AddSingleton<ChannelSubscriber>();
        builder.Services.AddSingleton<ConnectRecovery>();
        builder.Services.AddSingleton<StasisStartHandler>();
        builder.Services.AddSingleton<ChannelEndHandler>();
        builder.Services.AddSingleton<RouterCommandHandler>();
        builder.Services.AddSingleton<ClaimTallyHandler>();
        builder.Services.AddSingleton<HeartbeatHandler>();
        builder.Services.AddSingleton<CallDispatcher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<CallDispatcher>());
        builder.Services.AddHostedService<DraftCheck>();
        return builder;
    }
}
