using System.Text;
using CallRouter.Common;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Broker;

/// <summary>The adapter's side of RabbitMQ: declares its topology, publishes broadcasts and call events, consumes commands and heartbeats.</summary>
public sealed class AdapterBroker(IOptions<BrokerOptions> broker, IOptions<AdapterOptions> adapter, ILogger<AdapterBroker> logger) : IAsyncDisposable
{
    private readonly SemaphoreSlim _publishLock = new(1, 1);
    private readonly string _instance = Guid.NewGuid().ToString("N")[..8];
    private IConnection? _connection;
    private IChannel? _publish;
    private IChannel? _consume;
    private IChannel? _records;

    /// <summary>True while the RabbitMQ connection is open (false before it is made and while it recovers).</summary>
    public bool IsConnected => _connection?.IsOpen == true;

    public string CommandQueue => Topology.AdapterQueue(adapter.Value.Node);
    public string CommandErrorQueue => CommandQueue + "_error";
    public string HeartbeatErrorQueue => Topology.HeartbeatExchange + "_error";

    /// <param name="onRecovered">Runs after the connection recovered (its consumers, heartbeats included, resumed).</param>
    public async Task Start(Func<BasicDeliverEventArgs, Task> onCommand, Func<BasicDeliverEventArgs, Task> onHeartbeat, Action onRecovered,
        CancellationToken cancellationToken)
    {
        var b = broker.Value;
        // Any node of the list; automatic recovery moves to another when this one goes away.
        _connection = await b.Connect($"adapter {adapter.Value.Node} {_instance}", dispatchConcurrency: 64, cancellationToken);
        _connection.ConnectionRecoveryErrorAsync += (_, args) =>
        {
            logger.LogWarning("Adapter {Node}: RabbitMQ connection recovery failed, trying again: {Error}", adapter.Value.Node, args.Exception.Message);
            return Task.CompletedTask;
        };
        _connection.ConnectionShutdownAsync += (_, args) =>
        {
            logger.LogWarning("Adapter {Node}: RabbitMQ connection lost ({Reason}); recovering", adapter.Value.Node, args.ReplyText);
            return Task.CompletedTask;
        };
        _connection.RecoverySucceededAsync += (_, _) =>
        {
            logger.LogInformation("Adapter {Node} reconnected to RabbitMQ", adapter.Value.Node);
            // RabbitMQ.Client 7.2.2 loses track of publisher confirms on a channel it recovered (rabbitmq-dotnet-client
            // #1930): every confirmed publish on it then times out. Confirmed publishes move to a channel opened afresh.
            _ = Task.Run(ReopenConfirmedChannel);
            onRecovered();
            return Task.CompletedTask;
        };
        _publish = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        _consume = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        _records = await _connection.CreateChannelAsync(ConfirmedChannel, cancellationToken);

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
        logger.LogInformation("Adapter {Node} connected to RabbitMQ {Endpoint}", adapter.Value.Node, _connection.Endpoint);
    }

    private static readonly CreateChannelOptions ConfirmedChannel = new(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true);

    private async Task ReopenConfirmedChannel()
    {
        try
        {
            var stale = Interlocked.Exchange(ref _records, await _connection!.CreateChannelAsync(ConfirmedChannel));
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

    private static async Task Confirmed(Func<CancellationToken, ValueTask> publish)
    {
        using var deadline = new CancellationTokenSource(ConfirmTimeout);
        try
        {
            await publish(deadline.Token).AsTask().WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            // Not a cancellation: the retries around this treat a cancelled publish as the adapter stopping.
            throw new TimeoutException($"RabbitMQ did not confirm the publish within {ConfirmTimeout.TotalSeconds} s");
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
        var properties = ParkedProperties(delivery, reason);
        await _publishLock.WaitAsync();
        try
        {
            await _publish!.BasicPublishAsync("", errorQueue, false, properties, delivery.Body);
        }
        finally
        {
            _publishLock.Release();
        }
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
        if (_connection is not null)
        {
            try
            {
                await _connection.CloseAsync();
            }
            catch (Exception exception)
            {
                logger.LogDebug(exception, "Closing the RabbitMQ connection failed");
            }
            _connection.Dispose();
        }
    }
}
