namespace CallRouter.Messages;

/// <summary>Every exchange, queue, routing key and AMQP type name on the wire, in one place (README: "Wire contract").</summary>
public static class Topology
{
    /// <summary>Topic exchange; routing key = app name. Carries CallBroadcast, CallClaimed and CallFailed to apps.</summary>
    public const string BroadcastExchange = "call.broadcasts";

    /// <summary>Fanout exchange apps publish ClaimCall to.</summary>
    public const string ClaimExchange = "call.claims";

    /// <summary>Fanout exchange apps publish AppHeartbeat to; each adapter binds its own queue.</summary>
    public const string HeartbeatExchange = "app.heartbeats";

    /// <summary>Direct exchange for router → adapter commands; routing key = adapter node id.</summary>
    public const string CommandExchange = "call.commands";

    /// <summary>Direct exchange for adapter → router call events (CallEnded).</summary>
    public const string EventExchange = "call.events";

    /// <summary>Fanout exchange for finished-call records (CallRecord), durable; the CDR writer's queue is bound to it.</summary>
    public const string RecordExchange = "call.records";

    /// <summary>Durable queue the CDR writers (every router with PostgreSQL) share.</summary>
    public const string RecordQueue = "cdr.writer";

    /// <summary>Where the CDR writer parks records it cannot read, with header x-error.</summary>
    public const string RecordErrorQueue = "cdr.writer_error";

    /// <summary>Direct exchange for durable router timers; routing key = the timer's lane (its delay in ms).</summary>
    public const string TimerExchange = "router.timers";

    /// <summary>A wait queue with no consumer: its messages expire after its delay (a fixed bucket) and dead-letter into the router queue.</summary>
    public static string TimerQueue(long laneMs) => $"router.timers.{laneMs}ms";

    /// <summary>The router's saga queue (shared by every router process): broadcasts, claims, call events, deadlines.</summary>
    public const string RouterQueue = "router";

    /// <summary>Where the router parks what it cannot take (MassTransit's error queue; the reason is in MT-Fault-Message).</summary>
    public const string RouterErrorQueue = "router_error";

    /// <summary>Where the router parks deliveries that nothing in it consumes (MassTransit's skipped queue; none are expected).</summary>
    public const string RouterSkippedQueue = "router_skipped";

    /// <summary>The message-type header our own components put on what they send the router (MassTransit's URN form); a delivery without it is an app's claim.</summary>
    public const string MessageTypeHeader = "MT-MessageType";

    public static string MessageTypeUrn(string typeName) => $"urn:message:CallRouter.Messages:{typeName}";

    /// <summary>Routing key the router binds on the broadcast exchange. The leading underscore keeps it out of the app-name space.</summary>
    public const string RouterBroadcastKey = "_router";

    /// <summary>Queue an app consumes broadcasts from, bound to <see cref="BroadcastExchange"/> with the app name.</summary>
    public static string AppQueue(string app) => $"app.{app}";

    /// <summary>Queue an adapter consumes commands from, bound to <see cref="CommandExchange"/> with its node id.</summary>
    public static string AdapterQueue(string node) => $"adapter.{node}";

    /// <summary>Per-adapter-process heartbeat queue (exclusive, auto-delete).</summary>
    public static string AdapterHeartbeatQueue(string node, string instance) => $"adapter.{node}.heartbeats.{instance}";

    /// <summary>Direct exchange apps publish ControlCall commands to; routing key = the route from CallControlStarted (the node). Unroutable commands go to its alternate exchange.</summary>
    public const string ControlExchange = "call.control";

    /// <summary>Fanout alternate exchange of <see cref="ControlExchange"/>: commands no adapter took, answered node-unavailable by any adapter.</summary>
    public const string ControlUnroutedExchange = "call.control.unrouted";

    /// <summary>Queue bound to <see cref="ControlUnroutedExchange"/>, shared by every adapter.</summary>
    public const string ControlUnroutedQueue = "call.control.unrouted";

    /// <summary>Topic exchange for controlled-call events to the winning app; routing key = app name.</summary>
    public const string ControlEventExchange = "call.control.events";

    /// <summary>Per-adapter-process queue of control commands (exclusive: gone with the adapter, so commands for it become unroutable).</summary>
    public static string AdapterControlQueue(string node) => $"adapter.{node}.control";

    /// <summary>Where an adapter parks control commands it refused, with x-error.</summary>
    public const string ControlErrorQueue = "call.control_error";

    /// <summary>AMQP <c>type</c> property values; a message without one on the router queue is taken as a claim.</summary>
    public static class Types
    {
        public const string CallBroadcast = nameof(Messages.CallBroadcast);
        public const string CallClaimed = nameof(Messages.CallClaimed);
        public const string ClaimCall = nameof(Messages.ClaimCall);
        public const string ClaimReply = nameof(Messages.ClaimReply);
        public const string ContinueCall = nameof(Messages.ContinueCall);
        public const string CallEnded = nameof(Messages.CallEnded);
        public const string AppHeartbeat = nameof(Messages.AppHeartbeat);
        public const string CallRecord = nameof(Messages.CallRecord);
        public const string ClaimTally = nameof(Messages.ClaimTally);
        public const string ClaimTallies = nameof(Messages.ClaimTallies);
        public const string CallControlStarted = nameof(Messages.CallControlStarted);
        public const string CallControlEnded = nameof(Messages.CallControlEnded);
        public const string ControlCall = nameof(Messages.ControlCall);
        public const string ControlReply = nameof(Messages.ControlReply);
        public const string CallFailed = nameof(Messages.CallFailed);
    }
}
