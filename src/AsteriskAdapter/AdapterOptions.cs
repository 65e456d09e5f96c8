using CallRouter.Messages;

namespace CallRouter.AsteriskAdapter;

/// <summary>Adapter settings, bound from the "Adapter" section (e.g. Adapter__AriUrl=http://pbx1:8088/ari/).</summary>
public sealed class AdapterOptions
{
    public const string Section = "Adapter";

    /// <summary>ARI base address, ending in /ari/.</summary>
    public Uri AriUrl { get; set; } = new(Environment.GetEnvironmentVariable("ARI_URL") ?? DefaultAriUrl);

    /// <summary>The ARI address used when none is configured.</summary>
    public const string DefaultAriUrl = "http://localhost:8088/ari/";
    public string AriUser { get; set; } = Environment.GetEnvironmentVariable("ARI_USER") ?? "router";
    public string AriPassword { get; set; } = Environment.GetEnvironmentVariable("ARI_PASSWORD") ?? "secret";

    /// <summary>The Stasis app name the dialplan sends calls to.</summary>
    public string App { get; set; } = "call-router";

    /// <summary>The node id used when none is configured.</summary>
    public const string DefaultNode = "asterisk-1";

    /// <summary>
    /// This Asterisk's node id: the routing key router commands for its channels carry. Unique per adapter: two
    /// adapters with one node id share one command queue and take each other's decisions.
    /// </summary>
    public string Node { get; set; } = Environment.GetEnvironmentVariable("ROUTER_NODE") ?? DefaultNode;

    /// <summary>Broadcast timeout when the dialplan gives none (StasisBroadcast's default is 500 ms).</summary>
    public int DefaultTimeoutMs { get; set; } = 2000;

    /// <summary>After the deadline, how long to wait for the router's word before falling back alone.</summary>
    public TimeSpan FallbackGrace { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// A call still undecided this long after its broadcast gets ROUTER_CALL_ID on its channel (one background ARI request),
    /// so an adapter restarted while it waits fails it under the same id. A call decided sooner gets it from its handover
    /// and costs no request. 0: at once, for every call.
    /// </summary>
    public TimeSpan CallIdMarkAfter { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>An app is live while its last heartbeat is younger than this.</summary>
    public TimeSpan AppLivenessTimeout { get; set; } = TimeSpan.FromSeconds(6);

    /// <summary>
    /// After it starts (or reconnects to RabbitMQ) the adapter learns for this long which apps are live before it fails
    /// a call as no-live-app (such a call waits, and is offered as soon as a matching app is heard); /health/ready says
    /// not ready meanwhile. Unset: <see cref="AppLivenessTimeout"/>, within which every live app has heartbeated.
    /// </summary>
    public TimeSpan? AppWarmup { get; set; }

    /// <summary>Where a claimed call continues when the claim names no target; unset = the next priority.</summary>
    public DialplanTarget? DefaultTarget { get; set; }

    /// <summary>
    /// Send a CallRecord (CDR) per call: the adapter subscribes to each channel to hear its end. Off for a box that keeps
    /// no CDRs, which saves an ARI request and a persistent message per call.
    /// </summary>
    public bool RecordCalls { get; set; } = true;

    /// <summary>
    /// A decided call's CDR waits this long at most for the router's claim tally (sent when the router forgets the call,
    /// Router__FinishedRetention after the decision) before it is written with claims unknown.
    /// </summary>
    public TimeSpan TallyWait { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// A call's CDR draft whose channel has not ended this long after it was made (or last checked) is checked with ARI
    /// (GET /channels/{id}): a channel gone without a ChannelDestroyed heard gets its record finished. A draft whose
    /// channel subscription failed is checked at once. Checks run every quarter of this.
    /// </summary>
    public TimeSpan DraftCheckAfter { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// One ARI request on the call path gives up after this (an answer slower than this is taken as a failure and
    /// retried, see <see cref="AriRequestRetries"/>). Much shorter than a call's timeout, so a hung Asterisk or proxy
    /// cannot hold a call.
    /// </summary>
    public TimeSpan AriRequestTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Retries of an idempotent ARI request (variable set, continue) that failed with 5xx, a reset or a timeout.</summary>
    public int AriRequestRetries { get; set; } = 2;

    /// <summary>
    /// With quorum queues: how long publishes must keep going unconfirmed past their 5 s deadline before the adapter
    /// publishes on a new connection. A connection opened before the majority has declared a cut-off node down stalls too
    /// (RabbitMQ 3.x), so keep it at least the cluster's net_ticktime (10 s) less 5 s, plus a little: 8 s. 0: at once.
    /// </summary>
    public TimeSpan StalledPublishReplaceAfter { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>
    /// A handover (variables, then continue or move, retries included) that has not succeeded within this gives up and
    /// the call falls back to the dialplan as FAILED/ari-error.
    /// </summary>
    public TimeSpan HandoverTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Admission control: while more than this many messages wait in the router's queue (the ready count the RabbitMQ
    /// console shows), new calls are not broadcast but sent back to the dialplan at once as FAILED/overloaded. 0 turns
    /// it off. The default is about a quarter of a second of a router's work on a small machine.
    /// </summary>
    public int ShedAboveRouterBacklog { get; set; } = 1000;

    /// <summary>
    /// Admission control on this adapter's own side: while this many broadcast calls wait in the router's app for their
    /// decision and handover, new calls are not broadcast but sent back to the dialplan at once as FAILED/overloaded.
    /// Past capacity every stage (router, apps, ARI) queues, and a cap on the calls in flight keeps the time each admitted
    /// call waits below its timeout, where an unbounded queue makes every call late. Size it as peak calls/s × time to a
    /// decision, plus the calls nobody claims (they wait their whole timeout). 0 turns it off.
    /// </summary>
    public int MaxOpenCalls { get; set; } = 200;

    /// <summary>How often the router's backlog is read (a passive queue declare).</summary>
    public TimeSpan BacklogCheckInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Parallel ARI requests on the call path at most (its own connections); more wait for a free one, and their
    /// <see cref="AriRequestTimeout"/> starts only once they are sent.
    /// </summary>
    public int MaxAriConnections { get; set; } = 64;

    /// <summary>
    /// Parallel background ARI requests at most (CDR subscriptions, the early ROUTER_CALL_ID, draft checks), on
    /// connections of their own: however many queue, the call path keeps all of its <see cref="MaxAriConnections"/>.
    /// </summary>
    public int AriBackgroundConcurrency { get; set; } = 8;

    /// <summary>Background ARI requests waiting at most; more are shed (see the README's CDR section for what that costs).</summary>
    public int AriBackgroundQueue { get; set; } = 20_000;
}
