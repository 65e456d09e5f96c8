using RabbitMQ.Client;

namespace CallRouter.Common;

/// <summary>
/// The one way our processes open a plain RabbitMQ connection (MassTransit opens its own from the same
/// <see cref="BrokerOptions"/>): credentials, virtual host, heartbeat, recovery and the cluster's node list.
/// </summary>
public static class BrokerConnection
{
    /// <summary>
    /// A connection factory for <paramref name="broker"/>. <paramref name="clientName"/> names the connection in the
    /// management console (tests and operators find connections by it). Connections recover by themselves, topology
    /// included, within a second of the broker (or another node of the cluster) taking connections again, not the
    /// default 5 s. HostName and Port are the first node, for a caller that connects without <see cref="Endpoints"/>.
    /// </summary>
    /// <param name="dispatchConcurrency">Deliveries handled at once per channel (RabbitMQ.Client's default is one at a time).</param>
    public static ConnectionFactory Factory(this BrokerOptions broker, string clientName, ushort dispatchConcurrency = 1)
    {
        var (host, port) = broker.Nodes()[0];
        return new ConnectionFactory
        {
            HostName = host,
            Port = port,
            VirtualHost = broker.VirtualHost,
            UserName = broker.User,
            Password = broker.Password,
            ClientProvidedName = clientName,
            AutomaticRecoveryEnabled = true,
            TopologyRecoveryEnabled = true,
            NetworkRecoveryInterval = TimeSpan.FromSeconds(1),
            RequestedHeartbeat = broker.Heartbeat,
            ConsumerDispatchConcurrency = dispatchConcurrency,
        };
    }

    /// <summary>Every node to try, in the order given: the client connects to the first that answers, and recovery moves on to another.</summary>
    public static IList<AmqpTcpEndpoint> Endpoints(this BrokerOptions broker) =>
        [.. broker.Nodes().Select(n => new AmqpTcpEndpoint(n.Host, n.Port))];

    /// <summary>Opens a connection to any node of <paramref name="broker"/>, made by <see cref="Factory"/>.</summary>
    public static Task<IConnection> Connect(this BrokerOptions broker, string clientName, ushort dispatchConcurrency = 1,
        CancellationToken cancellationToken = default) =>
        broker.Factory(clientName, dispatchConcurrency).CreateConnectionAsync(broker.Endpoints(), cancellationToken);
}
