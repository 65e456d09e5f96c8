namespace CallRouter.Router;

/// <summary>Router settings, bound from the "Router" section (e.g. Router__UnknownCallGrace=00:00:02).</summary>
public sealed class RouterOptions
{
    public const string Section = "Router";

    /// <summary>How long a claim for a call the router has not seen waits for its broadcast before "not-found".</summary>
    public TimeSpan UnknownCallGrace { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a decided call is remembered, so late claims get "already-claimed"/"finished" instead of "not-found".</summary>
    public TimeSpan FinishedRetention { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// 0 (the default): the first valid claim wins, as in StasisBroadcast. Above 0: the first claim opens a window this
    /// long, and the winner is drawn at random among the valid claims that arrived in it, so apps that claim at once
    /// win equally often whatever the broker's delivery order; every decision waits this long.
    /// </summary>
    public TimeSpan ClaimWindow { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// The adapters' Adapter__FallbackGrace: how long after a call's deadline an adapter waits for the router's decision
    /// before it falls back. Only checked against <see cref="ClaimWindow"/> on start (the window must be shorter).
    /// </summary>
    public TimeSpan AdapterFallbackGrace { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// How long a claim tally (the claim count for a decided call's CDR) waits to share its message to the adapter with
    /// the tallies that follow it. 0: no wait (what is queued meanwhile still leaves together). A call that ends within it
    /// gets its CDR twice (the second copy with the count).
    /// </summary>
    public TimeSpan TallyBatchDelay { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Messages the router's queue hands over before acknowledgements. Unset: 256 with one router (Memory mode); with the
    /// saga in PostgreSQL, <see cref="ConcurrentMessageLimit"/>, so no router holds messages it is not yet handling. A
    /// broadcast held in one router's buffer while another router takes its call's claims leaves them waiting for it, and
    /// past <see cref="UnknownCallGrace"/> they are answered "not-found" (seen: 1 claim in 40,000 with 256, on a loaded box).
    /// </summary>
    public ushort? PrefetchCount { get; set; }

    /// <summary>The prefetch in effect: <see cref="PrefetchCount"/>, or its default for the mode.</summary>
    public ushort EffectivePrefetchCount => PrefetchCount
        ?? (SagaRepository == SagaStore.Postgres ? (ushort)Math.Clamp(ConcurrentMessageLimit, 1, ushort.MaxValue) : (ushort)256);

    /// <summary>
    /// With quorum queues: how long sends must keep running past their deadline (5 s) before the router reconnects to
    /// another node (<see cref="Transport.StalledConnectionBreaker"/>). A reconnect made before the majority has declared a
    /// cut-off node down gets channels that stall too (RabbitMQ 3.x), so keep it at least the cluster's net_ticktime
    /// (10 s) less the send deadline, plus a little: 8 s. 0 reconnects at the first late send.
    /// </summary>
    public TimeSpan StalledSendReconnectAfter { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>Messages handled at once (claims for one call still run one after another).</summary>
    public int ConcurrentMessageLimit { get; set; } = 64;

    /// <summary>
    /// Wait for the broker to confirm each send. Off by default: the router's messages are transient (they live for
    /// seconds), so a broker crash loses them confirmed or not, and the adapter's own deadline fallback ends those calls.
    /// Always on with quorum queues (a cluster): there a lost node must not take an unconfirmed claim answer with it.
    /// </summary>
    public bool PublisherConfirms { get; set; }

    /// <summary>
    /// Users that may claim for apps other than the one of their own name: user → regular expression the whole app
    /// name must match (Router__AppOwners__guest=.*). Read by the adapters too, for heartbeats (<see cref="Common.AppOwnership"/>).
    /// </summary>
    public Dictionary<string, string> AppOwners { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Memory (the default): one router, state in process, timers in process. Postgres: saga state in PostgreSQL with
    /// optimistic concurrency and timers on the broker, so several routers can share the router queue and a deadline
    /// still fires when the router that set it has died.
    /// </summary>
    public SagaStore SagaRepository { get; set; } = SagaStore.Memory;
}

public enum SagaStore
{
    Memory,
    Postgres,
}
