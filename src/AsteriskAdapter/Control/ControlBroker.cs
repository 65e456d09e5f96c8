using System.Text;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.Common;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Control;

/// <summary>
/// Call control's side of RabbitMQ: consumes commands for this node (an exclusive queue, so commands for a stopped
/// adapter become unroutable) and the unrouted ones on the adapter's consuming connection, and publishes events and
/// replies through <see cref="AdapterBroker.Publish"/> (one channel of the publishing connection, so each call's events
/// leave in ARI order, and a stalled publishing connection is replaced for them too).
/// </summary>
public sealed class ControlBroker(AdapterBroker adapterBroker, IOptions<AdapterOptions> options, IOptions<BrokerOptions> broker, ILogger<ControlBroker> logger)
{
    private IChannel? _consume;

    public string CommandQueue => Topology.AdapterControlQueue(options.Value.Node);

    /// <summary>The routing key apps echo back (CallControlStarted.route).</summary>
    public string Route => options.Value.Node;

    public async Task Start(Func<BasicDeliverEventArgs, Task> onCommand, Func<BasicDeliverEventArgs, Task> onUnrouted, CancellationToken cancellationToken)
    {
        _consume = await adapterBroker.OpenChannel(cancellationToken);
        await Declare(_consume, broker.Value.DurableQueueArguments(), cancellationToken);
        await _consume.BasicQosAsync(0, 256, false, cancellationToken);

        await _consume.QueueDeclareAsync(CommandQueue, durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken);
        await _consume.QueueBindAsync(CommandQueue, Topology.ControlExchange, Route, cancellationToken: cancellationToken);
        var commands = new AsyncEventingBasicConsumer(_consume);
        commands.ReceivedAsync += (_, delivery) => onCommand(delivery);
        await _consume.BasicConsumeAsync(CommandQueue, autoAck: false, commands, cancellationToken);

        var unrouted = new AsyncEventingBasicConsumer(_consume);
        unrouted.ReceivedAsync += (_, delivery) => onUnrouted(delivery);
        await _consume.BasicConsumeAsync(Topology.ControlUnroutedQueue, autoAck: false, unrouted, cancellationToken);
    }

    /// <summary>The same declarations as infra/broker-definitions.sh (the alternate exchange is an argument of call.control).</summary>
    public static async Task Declare(IChannel channel, IDictionary<string, object?> durableQueueArguments, CancellationToken cancellationToken)
    {
        await channel.ExchangeDeclareAsync(Topology.ControlUnroutedExchange, ExchangeType.Fanout, durable: true, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Topology.ControlUnroutedQueue, durable: true, exclusive: false, autoDelete: false, durableQueueArguments, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(Topology.ControlUnroutedQueue, Topology.ControlUnroutedExchange, "", cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(Topology.ControlExchange, ExchangeType.Direct, durable: true,
            arguments: new Dictionary<string, object?> { ["alternate-exchange"] = Topology.ControlUnroutedExchange }, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(Topology.ControlEventExchange, ExchangeType.Topic, durable: true, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Topology.ControlErrorQueue, durable: true, exclusive: false, autoDelete: false, durableQueueArguments, cancellationToken: cancellationToken);
    }

    /// <summary>An event for the app that controls the call: topic exchange, routing key = app name, AMQP type = the event's.</summary>
    public Task PublishEvent<T>(string app, string type, Guid callId, T message) =>
        Publish(Topology.ControlEventExchange, app, Properties(type, callId.ToString()), Wire.Serialize(message));

    public Task Reply(string replyTo, string? correlationId, ControlReply reply) =>
        Publish("", replyTo, Properties(Topology.Types.ControlReply, correlationId), Wire.Serialize(reply));

    /// <summary>Sets a refused command aside in call.control_error with x-error (its user_id moved to a header), then acks it.</summary>
    public async Task Park(BasicDeliverEventArgs delivery, string reason)
    {
        logger.LogWarning("Parked a control command: {Reason}", reason);
        await Publish("", Topology.ControlErrorQueue, AdapterBroker.ParkedProperties(delivery, reason), delivery.Body);
    }

    public Task Ack(BasicDeliverEventArgs delivery) => _consume!.BasicAckAsync(delivery.DeliveryTag, false).AsTask();

    private Task Publish(string exchange, string routingKey, BasicProperties properties, ReadOnlyMemory<byte> body) =>
        adapterBroker.Publish(exchange, routingKey, properties, body);

    private static BasicProperties Properties(string type, string? correlationId) => new()
    {
        ContentType = "application/json",
        Type = type,
        DeliveryMode = DeliveryModes.Transient,
        MessageId = Guid.NewGuid().ToString(),
        CorrelationId = correlationId,
        Timestamp = new AmqpTimestamp(DateTimeOffset.UtcNow.ToUnixTimeSeconds()),
    };
}
