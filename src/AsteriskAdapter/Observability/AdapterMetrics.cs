using System.Diagnostics.Metrics;
using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Observability;

/// <summary>The adapter's meter ("CallRouter.Adapter"): counters on the call path, gauges read from state only when scraped.</summary>
public sealed class AdapterMetrics
{
    public const string MeterName = "CallRouter.Adapter";

    /// <summary>Decision latency buckets (seconds), for 1 ms to 5 s.</summary>
    public static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    private readonly Counter<long> _broadcasts;
    private readonly Counter<long> _failed;
    private readonly Counter<long> _endings;
    private readonly Histogram<double> _latency;
    private readonly Counter<long> _stuck;

    public AdapterMetrics(IMeterFactory meters, CallBook book, LiveApps live, AriEventStream ari, AriClient rest, AdapterBroker broker, RouterBacklog backlog, IOptions<AdapterOptions> options)
    {
        var meter = meters.Create(MeterName);
        _broadcasts = meter.CreateCounter<long>("callrouter.adapter.broadcasts", "{call}", "Calls broadcast to apps");
        _failed = meter.CreateCounter<long>("callrouter.adapter.failed", "{call}", "Calls sent back to the dialplan FAILED, by reason");
        _endings = meter.CreateCounter<long>("callrouter.adapter.endings", "{call}",
            "Calls that left the router's Stasis app, by ROUTER_STATUS and ROUTER_REASON");
        _latency = meter.CreateHistogram("callrouter.adapter.decision_latency", "s",
            "Broadcast sent to the call handed over on the router's word (or the adapter's fallback), by status",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        meter.CreateObservableGauge("callrouter.adapter.open_broadcasts", book.CountOpen, "{call}",
            "Broadcast calls waiting for a decision");
        meter.CreateObservableCounter("callrouter.adapter.ari_reconnects", () => ari.Reconnects, "{connection}",
            "ARI WebSocket connections made after the first");
        meter.CreateObservableCounter("callrouter.adapter.ari_disconnected", () => ari.DisconnectedTime.TotalSeconds, "s",
            "Time the ARI WebSocket was down after its first connect; Asterisk fails calls that reach Stasis meanwhile (STASISSTATUS=FAILED)");
        meter.CreateObservableCounter("callrouter.adapter.ari_request_failures", () => rest.FailedAttempts, "{request}",
            "ARI requests that answered 5xx, were reset or timed out (retried or not)");
        meter.CreateObservableCounter("callrouter.adapter.ari_background_shed", () => rest.Shed, "{request}",
            "Background ARI requests (CDR subscription, early ROUTER_CALL_ID, draft check) refused because the background queue was full");
        meter.CreateObservableGauge<long>("callrouter.adapter.ari_waiting", () =>
            {
                var (call, background) = rest.Waiting;
                return (Measurement<long>[])[new Measurement<long>(call, new KeyValuePair<string, object?>("lane", "call")),
                    new Measurement<long>(background, new KeyValuePair<string, object?>("lane", "background"))];
            }, "{request}",
            "ARI requests waiting for a connection: call lane (Adapter__MaxAriConnections) and background lane (Adapter__AriBackgroundConcurrency)");
        _stuck = meter.CreateCounter<long>("callrouter.adapter.handovers_stuck", "{call}",
            "Calls whose FAILED/ari-error fallback failed too; retried until the channel leaves the app or is gone");
        meter.CreateObservableGauge("callrouter.adapter.router_backlog", () => backlog.Ready, "{message}",
            "Messages ready in the router's queue at the last check; over Adapter__ShedAboveRouterBacklog new calls are shed (FAILED/overloaded)");
        meter.CreateObservableGauge("callrouter.adapter.ari_connected", () => ari.IsConnected ? 1 : 0, null,
            "1 while the ARI WebSocket is connected");
        meter.CreateObservableGauge("callrouter.adapter.broker_connected", () => broker.IsConnected ? 1 : 0, null,
            "1 while both RabbitMQ connections (consuming and publishing) are open");
        meter.CreateObservableCounter("callrouter.adapter.broker_publisher_replacements", () => broker.PublisherReplacements, "{connection}",
            "Publishing connections replaced because the broker stopped confirming publishes on an open one (a cluster after a partition)");
        meter.CreateObservableGauge("callrouter.adapter.live_apps",
            () => live.Snapshot().Select(a => new Measurement<int>(a.Live ? 1 : 0, new KeyValuePair<string, object?>("app", a.App))),
            "{app}", "1 for each app offered calls now (heartbeat recent enough), 0 for one heard before that went quiet");
        var info = new Measurement<int>(1, new KeyValuePair<string, object?>("node", options.Value.Node),
            new KeyValuePair<string, object?>("stasis_app", options.Value.App));
        meter.CreateObservableGauge("callrouter.adapter.info", () => info, null, "This adapter's node id and Stasis app");
    }

    public void Broadcast() => _broadcasts.Add(1);

    /// <summary>A call's ari-error fallback failed as well: it is being retried until the channel has left.</summary>
    public void HandoverStuck() => _stuck.Add(1);

    /// <summary>A call sent back FAILED without a broadcast decision (no live app, bad options or filter, restart, failed move).</summary>
    public void Failed(string reason)
    {
        _failed.Add(1, new KeyValuePair<string, object?>("reason", reason));
        Ended(CallStatus.Failed, reason);
    }

    public void Ended(string status, string reason) =>
        _endings.Add(1, new KeyValuePair<string, object?>("status", status), new KeyValuePair<string, object?>("reason", reason));

    /// <summary>A broadcast call handed over: its ending and the time from broadcast to handover.</summary>
    public void HandedOver(string status, string reason, TimeSpan sinceBroadcast)
    {
        Ended(status, reason);
        _latency.Record(sinceBroadcast.TotalSeconds, new KeyValuePair<string, object?>("status", status));
    }
}
