namespace CallRouter.Common;

/// <summary>Where the RabbitMQ broker is. Bound from the "Broker" section; environment variables Broker__Host etc. or RABBITMQ_HOST etc.</summary>
public sealed class BrokerOptions
{
    public const string Section = "Broker";

    /// <summary><see cref="QueueType"/> value for Raft-replicated queues, what a cluster needs.</summary>
    public const string QuorumQueues = "quorum";

    public string Host { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_HOST") ?? "localhost";
    public int Port { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("RABBITMQ_PORT"), out var port) ? port : 5672;
    public string VirtualHost { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_VHOST") ?? "/";
    public string User { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_USER") ?? "guest";
    public string Password { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_PASSWORD") ?? "guest";

    /// <summary>
    /// A cluster's nodes, comma-separated "host[:port]" (port defaults to <see cref="Port"/>); clients connect to any and
    /// move to another when theirs goes away. Empty: the single node <see cref="Host"/>:<see cref="Port"/>.
    /// </summary>
    public string Hosts { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_HOSTS") ?? "";

    /// <summary>"classic" (default, one node) or "quorum" (a cluster): the type of the durable queues we declare.</summary>
    public string QueueType { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_QUEUE_TYPE") ?? "classic";

    /// <summary>
    /// AMQP heartbeat: a connection whose node went silent (cut off by a partition, its machine gone) is given up after
    /// about two of these and the client moves to another node. RabbitMQ's default of 60 s would stall calls that long.
    /// </summary>
    public TimeSpan Heartbeat { get; set; } = TimeSpan.FromSeconds(5);

    public bool UsesQuorumQueues => string.Equals(QueueType, QuorumQueues, StringComparison.OrdinalIgnoreCase);

    /// <summary>The nodes to connect to, in the order given.</summary>
    public IReadOnlyList<(string Host, int Port)> Nodes()
    {
        var nodes = Hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(node =>
            {
                var colon = node.LastIndexOf(':');
                return colon > 0 && int.TryParse(node[(colon + 1)..], out var p) ? (node[..colon], p) : (node, Port);
            })
            .ToList();
        return nodes.Count > 0 ? nodes : [(Host, Port)];
    }

    /// <summary>Arguments of every durable queue we declare (infra/broker-definitions.sh declares the same): none, or x-queue-type=quorum.</summary>
    public Dictionary<string, object?> DurableQueueArguments() =>
        UsesQuorumQueues ? new() { ["x-queue-type"] = QuorumQueues } : new();
}
