using System.Text;
using CallRouter.Common;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Broker;

/// <summary>
/// The adapter's side of RabbitMQ: declares its topology, publishes broadcasts and call events, consumes commands and
/// heartbeats. Two connections, as RabbitMQ advises: one consumes (commands, heartbeats, call control's commands), one
/// publishes (broadcasts, call events, CDRs, call control's events and replies, parked messages), so flow
/// control on publishes never holds up deliveries and acks, and a publishing connection that stalls can be replaced
/// without touching the consumers.
/// </summary>
public sealed class AdapterBroker(IOptions<BrokerOptions> broker, IOptions<AdapterOptions> adapter, ILogger<AdapterBroker> logger) : IAsyncDisposable
{
    private readonly SemaphoreSlim _publishLock = new(1, 1);
    private readonly string _instance = Guid.NewGuid().ToString("N")[..8];
    private IConnection? _connection;
    private IChannel? _consume;
    private IConnection? _publisher;
    private IChannel? _publish;
    private IChannel? _records;

    /// <summary>True while both RabbitMQ connections are open (false before they are made and while one recovers).</summary>
    public bool IsConnected => _connection?.IsOpen == true && _publisher?.IsOpen == true;

    public string CommandQueue => Topology.AdapterQueue(adapter.Value.Node);
    public string CommandErrorQueue => CommandQueue + "_error";
    public string HeartbeatErrorQueue => Topology.HeartbeatExchange + "_error";

    /// <summary>The client-provided name of the consuming connection (the publishing one adds " publishing").</summary>
    public string ConnectionName => $"adapter {adapter.Value.Node} {_instance}";

    /// <param name="onRecovered">Runs after the connection recovered (its consumers, heartbeats included, resumed).</param>
    public async Task Start(Func<BasicDeliverEventArgs, Task> onCommand, Func<BasicDeliverEventArgs, Task> onHeartbeat, Action onRecovered,
        CancellationToken cancellationToken)
    {
        // Any node of the list; automatic recovery moves to another when this one goes away.
        _connection = await Connect(ConnectionName, dispatchConcurrency: 64, cancellationToken);
        _connection.RecoverySucceededAsync += (_, _) =>
        {
            onRecovered();
            return Task.CompletedTask;
        };
        (_publisher, _publish, _records) = await ConnectPublisher(cancellationToken);
        _consume = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);

        await DeclareTopology(_consume, cancellationToken);
        await _consume.BasicQosAsync(0, 256, false, cancellationToken);

        var commands = new AsyncEventingBasicConsumer(_consume);
        commands.ReceivedAsync += (_, delivery) => onCommand(delivery);
        await _consume.BasicConsumeAsync(CommandQueue, autoAck: false, commands, cancellationToken);

        var heartbeatQueue = Topology.AdapterHeartbeatQueue(adapter.Value.Node, _instance);
        await _consume.QueueDeclareAsync(heartbeatQueue, durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken);
        await _consume.QueueBindAsync(heartbeatQueue, Topology.HeartbeatExchange, "", cancellationToken: cancellationToken);
        var heartbeats = new AsyncEventingBasicConsumer(_consume);
        heartbeats.ReceivedAsync += (_, delivery) => onHeartbeat(delivery);
        await _consume.BasicConsumeAsync(heartbeatQueue, autoAck: false, heartbeats, cancellationToken);
        logger.LogInformation("Adapter {Node} connected to RabbitMQ {Endpoint} (publishing through {PublishingEndpoint})",
            adapter.Value.Node, _connection.Endpoint, _publisher.Endpoint);
    }

    /// <summary>A connection that logs its losses and recoveries.</summary>
    private async Task<IConnection> Connect(string name, ushort dispatchConcurrency, CancellationToken cancellationToken)
    {
        var connection = await broker.Value.Connect(name, dispatchConcurrency, cancellationToken);
        connection.ConnectionRecoveryErrorAsync += (_, args) =>
        {
            logger.LogWarning("{Connection}: RabbitMQ connection recovery failed, trying again: {Error}", name, args.Exception.Message);
            return Task.CompletedTask;
        };
        connection.ConnectionShutdownAsync += (_, args) =>
        {
            if (args.Initiator != ShutdownInitiator.Application)
                logger.LogWarning("{Connection}: RabbitMQ connection lost ({Reason}); recovering", name, args.ReplyText);
            return Task.CompletedTask;
        };
        connection.RecoverySucceededAsync += (_, _) =>
        {
            logger.LogInformation("{Connection} reconnected to RabbitMQ {Endpoint}", name, connection.Endpoint);
            return Task.CompletedTask;
        };
        return connection;
    }

    /// <summary>The publishing connection: one channel for broadcasts and parked messages, one with publisher confirms.</summary>
    private async Task<(IConnection Connection, IChannel Publish, IChannel Records)> ConnectPublisher(CancellationToken cancellationToken)
    {
        var connection = await Connect(ConnectionName + " publishing", dispatchConcurrency: 1, cancellationToken);
        try
        {
            // RabbitMQ.Client 7.2.2 loses track of publisher confirms on a channel it recovered (rabbitmq-dotnet-client
            // #1930): every confirmed publish on it then times out. Confirmed publishes move to a channel opened afresh.
            connection.RecoverySucceededAsync += (_, _) =>
            {
                _ = Task.Run(() => ReopenConfirmedChannel(connection));
                return Task.CompletedTask;
            };
            var publish = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            var records = await connection.CreateChannelAsync(ConfirmedChannel, cancellationToken);
            return (connection, publish, records);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private static readonly CreateChannelOptions ConfirmedChannel = new(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true);

    private async Task ReopenConfirmedChannel(IConnection connection)
    {
        try
        {
            var fresh = await connection.CreateChannelAsync(ConfirmedChannel);
            if (connection != _publisher)
            {
                await fresh.DisposeAsync(); // replaced meanwhile (ReplacePublisher)
                return;
            }
            var stale = Interlocked.Exchange(ref _records, fresh);
            if (stale is not null)
                await stale.DisposeAsync();
        }
        catch (Exception exception)
        {
            logger.LogWarning("Adapter {Node}: the confirmed channel could not be opened again after the recovery ({Error}); the recovered one stays",
                adapter.Value.Node, exception.Message);
        }
    }

    /// <summary>Another channel on the adapter's connection (for call control), once <see cref="Start"/> has connected.</summary>
    public async Task<IChannel> OpenChannel(CancellationToken cancellationToken) =>
        await (_connection ?? throw new InvalidOperationException("the adapter is not connected to RabbitMQ yet")).CreateChannelAsync(cancellationToken: cancellationToken);

    /// <summary>Idempotent declarations of everything the adapter publishes to or consumes from.</summary>
    private async Task DeclareTopology(IChannel channel, CancellationToken cancellationToken)
    {
        var durable = broker.Value.DurableQueueArguments();
        await channel.ExchangeDeclareAsync(Topology.BroadcastExchange, ExchangeType.Topic, durable: true, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(Topology.CommandExchange, ExchangeType.Direct, durable: true, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(Topology.EventExchange, ExchangeType.Fanout, durable: true, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(Topology.HeartbeatExchange, ExchangeType.Fanout, durable: true, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(CommandQueue, durable: true, exclusive: false, autoDelete: false, durable, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(CommandQueue, Topology.CommandExchange, adapter.Value.Node, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(CommandErrorQueue, durable: true, exclusive: false, autoDelete: false, durable, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(HeartbeatErrorQueue, durable: true, exclusive: false, autoDelete: false, durable, cancellationToken: cancellationToken);

        // Call records wait in a durable queue until a router with PostgreSQL writes them (same declaration as its CDR writer).
        await channel.ExchangeDeclareAsync(Topology.RecordExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Topology.RecordQueue, durable: true, exclusive: false, autoDelete: false, durable, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(Topology.RecordQueue, Topology.RecordExchange, "", cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Topology.RecordErrorQueue, durable: true, exclusive: false, autoDelete: false, durable, cancellationToken: cancellationToken);
    }

    /// <summary>
    /// One copy for the router, then one per app in random order: a single CC'd publish would reach the app queues
    /// in name order, so the same app would always hear first and win every race.
    /// </summary>
    public async Task PublishBroadcast(CallBroadcast broadcast, IReadOnlyList<string> audience)
    {
        var body = Wire.Serialize(broadcast);
        var order = audience.ToArray();
        Random.Shared.Shuffle(order);
        var ttl = Math.Max(1, (long)(broadcast.Deadline - DateTimeOffset.UtcNow).TotalMilliseconds);
        await _publishLock.WaitAsync();
        try
        {
            await _publish!.BasicPublishAsync(Topology.BroadcastExchange, Topology.RouterBroadcastKey, false, Properties(Topology.Types.CallBroadcast, broadcast.CallId, null), body);
            var toApps = Properties(Topology.Types.CallBroadcast, broadcast.CallId, ttl);
            foreach (var app in order)
                await _publish.BasicPublishAsync(Topology.BroadcastExchange, app, false, toApps, body);
        }
        finally
        {
            _publishLock.Release();
        }
    }

    /// <summary>
    /// A call event the router (or an app) must not miss, on the confirmed channel: returns once the broker has taken
    /// it, throws if it did not (the <see cref="BrokerOutbox"/> retries).
    /// </summary>
    public async Task PublishConfirmed(OutboundMessage message)
    {
        var properties = Properties(message.Type, message.CallId, message.Expires is { } expires
            ? Math.Max(1, (long)(expires - DateTimeOffset.UtcNow).TotalMilliseconds) : null);
        var records = _records ?? throw new InvalidOperationException("not connected to RabbitMQ yet");
        await Confirmed(token => records.BasicPublishAsync(message.Exchange, message.RoutingKey, false, properties, message.Body, token));
    }

    /// <summary>
    /// How long a confirmed publish may wait for its confirm. A node cut off by a partition pauses, and a connection to it
    /// can hang rather than fail: past this the publish fails and is retried (on another node once the connection moved).
    /// </summary>
    public static readonly TimeSpan ConfirmTimeout = TimeSpan.FromSeconds(5);

    private async Task Confirmed(Func<CancellationToken, ValueTask> publish)
    {
        using var deadline = new CancellationTokenSource(ConfirmTimeout);
        try
        {
            await publish(deadline.Token).AsTask().WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            ConfirmTimedOut();
            // Not a cancellation: the retries around this treat a cancelled publish as the adapter stopping.
            throw new TimeoutException($"RabbitMQ did not confirm the publish within {ConfirmTimeout.TotalSeconds} s");
        }
    }

    /// <summary>
    /// Late confirms this soon after a replacement were in flight on the old connection: they start no new stall. A stall
    /// with no late confirm this long before its wait is up cleared by itself.
    /// </summary>
    public static readonly TimeSpan ReplaceQuiet = ConfirmTimeout;

    private StallWatch? _stall;
    private long _replacements;

    /// <summary>How many times the adapter replaced its publishing connection after a confirm that never came (for tests and logs).</summary>
    public long PublisherReplacements => Interlocked.Read(ref _replacements);

    /// <summary>
    /// A publish ran past <see cref="ConfirmTimeout"/> on an open connection. After a partition, RabbitMQ 3.x can leave
    /// a channel whose sends to a quorum queue are taken and never enqueued, for good, confirmed or not
    /// (rabbitmq-server#14589, fixed in 4.2); the channel then stays in flow control, the node stops reading the
    /// connection, and even a new channel on it is never opened. So the whole publishing connection is replaced by a new
    /// one (to any node of the list) if confirms are still late <see cref="AdapterOptions.StalledPublishReplaceAfter"/>
    /// after the first, as the router reconnects for the same reason (StalledConnectionBreaker): a connection opened before the
    /// majority has declared the cut-off node down stalls too, and replacing at the first late confirm needed two or three
    /// replacements in a partition run. A closed connection is left to automatic recovery. Only with quorum queues: on a
    /// single node a confirm that late means the broker is blocking publishers (a memory or disk alarm), which a new
    /// connection would not change.
    /// </summary>
    /// <returns>True when this late confirm started a stall (the connection is replaced after the wait, unless it cleared).</returns>
    internal bool ConfirmTimedOut()
    {
        if (_publisher?.IsOpen != true || !broker.Value.UsesQuorumQueues)
            return false;
        return LazyInitializer.EnsureInitialized(ref _stall, () => new StallWatch(adapter.Value.StalledPublishReplaceAfter, ReplaceQuiet, ReplacePublisher)).Late();
    }

    private async Task ReplacePublisher()
    {
        try
        {
            logger.LogWarning("Adapter {Node}: RabbitMQ has left publishes unconfirmed past {Seconds} s for {Stall} s on an open connection "
                + "({Endpoint}): publishing on a new connection", adapter.Value.Node, ConfirmTimeout.TotalSeconds,
                adapter.Value.StalledPublishReplaceAfter.TotalSeconds, _publisher!.Endpoint);
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var (connection, publish, records) = await ConnectPublisher(deadline.Token);
            IConnection? stale;
            await _publishLock.WaitAsync();
            try
            {
                stale = _publisher;
                (_publisher, _publish) = (connection, publish);
                Interlocked.Exchange(ref _records, records);
            }
            finally
            {
                _publishLock.Release();
            }
            Interlocked.Increment(ref _replacements);
            logger.LogInformation("Adapter {Node} publishes through RabbitMQ {Endpoint}", adapter.Value.Node, connection.Endpoint);
            // Its publishes still waiting for a confirm fail, and are retried on the new connection.
            await Close(stale, "publishes not confirmed: publishing on a new connection");
        }
        catch (Exception exception)
        {
            logger.LogWarning("Adapter {Node}: no new publishing connection ({Error}); trying again at the next stalled confirm",
                adapter.Value.Node, exception.Message);
        }
    }

    /// <summary>A finished call's record: persistent, and confirmed by the broker before this returns (throws if it is not).</summary>
    public async Task PublishRecord(CallRecord record)
    {
        var properties = Properties(Topology.Types.CallRecord, record.CallId, null);
        properties.DeliveryMode = DeliveryModes.Persistent;
        // RabbitMQ.Client 7 tracks each confirm on its own: concurrent publishes on this channel each await their own.
        await Confirmed(token => _records!.BasicPublishAsync(Topology.RecordExchange, "", false, properties, Wire.Serialize(record), token));
    }

    /// <summary>An unconfirmed publish on the publishing connection's one channel (in the order of the calls, for call control's events).</summary>
    public async Task Publish(string exchange, string routingKey, BasicProperties properties, ReadOnlyMemory<byte> body)
    {
        await _publishLock.WaitAsync();
        try
        {
            await _publish!.BasicPublishAsync(exchange, routingKey, false, properties, body);
        }
        finally
        {
            _publishLock.Release();
        }
    }

    /// <summary>
    /// A parked message's properties: the reason in x-error, where it came from, and the sender's user_id moved to
    /// x-original-user-id (RabbitMQ refuses a publish whose user_id is not the adapter's own user).
    /// </summary>
    public static BasicProperties ParkedProperties(BasicDeliverEventArgs delivery, string reason)
    {
        var headers = new Dictionary<string, object?>(delivery.BasicProperties.Headers ?? new Dictionary<string, object?>())
        {
            ["x-error"] = Encoding.UTF8.GetBytes(reason),
            ["x-original-exchange"] = delivery.Exchange,
            ["x-original-routing-key"] = delivery.RoutingKey,
        };
        if (delivery.BasicProperties.UserId is { } userId)
            headers["x-original-user-id"] = userId;
        return new BasicProperties(delivery.BasicProperties) { UserId = null, Expiration = null, Headers = headers };
    }

    /// <summary>
    /// Sets a message that cannot be used aside in an _error queue, with the reason in the x-error header, then acks it.
    /// The sender's user_id moves to a header: RabbitMQ refuses a publish whose user_id is not the adapter's own user.
    /// </summary>
    public async Task Park(BasicDeliverEventArgs delivery, string errorQueue, string reason)
    {
        logger.LogWarning("Parked a message in {Queue}: {Reason}", errorQueue, reason);
        await Publish("", errorQueue, ParkedProperties(delivery, reason), delivery.Body);
        await Ack(delivery);
    }

    public Task Ack(BasicDeliverEventArgs delivery) => _consume!.BasicAckAsync(delivery.DeliveryTag, false).AsTask();

    private static BasicProperties Properties(string type, Guid callId, long? ttlMs) => new()
    {
        ContentType = "application/json",
        Type = type,
        DeliveryMode = DeliveryModes.Transient,
        MessageId = Guid.NewGuid().ToString(),
        CorrelationId = callId.ToString(),
        Timestamp = new AmqpTimestamp(DateTimeOffset.UtcNow.ToUnixTimeSeconds()),
        Expiration = ttlMs?.ToString(System.Globalization.CultureInfo.InvariantCulture),
        Headers = new Dictionary<string, object?> { [Topology.MessageTypeHeader] = Topology.MessageTypeUrn(type) },
    };

    public async ValueTask DisposeAsync()
    {
        await Close(_connection, "adapter stopping");
        await Close(_publisher, "adapter stopping");
    }

    /// <summary>Closes a connection without waiting long for a node that may not answer.</summary>
    private async Task Close(IConnection? connection, string reason)
    {
        if (connection is null)
            return;
        try
        {
            await connection.CloseAsync(Constants.ReplySuccess, reason, TimeSpan.FromSeconds(2), abort: true);
        }
        catch (Exception exception)
        {
            logger.LogDebug(exception, "Closing a RabbitMQ connection failed");
        }
        connection.Dispose();
    }
}
