using System.Text;
using System.Text.Json;
using CallRouter.Messages;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.Router.Transport;

/// <summary>
/// Where app claims come in. Apps send plain JSON with only AMQP's own reply_to and correlation_id, so each claim is
/// read strictly here: a bad one is answered "invalid-request" with the reason and parked in router.claims_error;
/// a good one goes on to the saga queue typed, in arrival order. (MassTransit would otherwise offer header-less JSON
/// to every message type the saga consumes.)
/// </summary>
public sealed class ClaimGate(IOptions<BrokerOptions> broker, ILogger<ClaimGate> logger) : BackgroundService
{
    private static readonly string ClaimUrn = Topology.MessageTypeUrn(Topology.Types.ClaimCall);
    private IConnection? _connection;
    private IChannel? _channel;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var b = broker.Value;
        var factory = new ConnectionFactory
        {
            HostName = b.Host, Port = b.Port, VirtualHost = b.VirtualHost, UserName = b.User, Password = b.Password,
            AutomaticRecoveryEnabled = true, TopologyRecoveryEnabled = true, ClientProvidedName = "router claim gate",
        };
        _connection = await factory.CreateConnectionAsync(stoppingToken);
        _channel = await _connection.CreateChannelAsync(cancellationToken: stoppingToken);
        await _channel.ExchangeDeclareAsync(Topology.ClaimExchange, ExchangeType.Fanout, durable: true, cancellationToken: stoppingToken);
        await _channel.QueueDeclareAsync(Topology.ClaimQueue, durable: true, exclusive: false, autoDelete: false, cancellationToken: stoppingToken);
        await _channel.QueueBindAsync(Topology.ClaimQueue, Topology.ClaimExchange, "", cancellationToken: stoppingToken);
        await _channel.QueueDeclareAsync(Topology.ClaimErrorQueue, durable: true, exclusive: false, autoDelete: false, cancellationToken: stoppingToken);
        await _channel.BasicQosAsync(0, 512, false, stoppingToken);

        var consumer = new AsyncEventingBasicConsumer(_channel);
        consumer.ReceivedAsync += (_, delivery) => Admit(delivery);
        await _channel.BasicConsumeAsync(Topology.ClaimQueue, autoAck: false, consumer, stoppingToken);
        try
        {
            await Task.Delay(Timeout.Infinite, stoppingToken);
        }
        catch (OperationCanceledException)
        {
        }
        await _connection.CloseAsync(CancellationToken.None);
    }

    private async Task Admit(BasicDeliverEventArgs delivery)
    {
        var result = ClaimParser.Parse(delivery.Body.Span);
        var channel = _channel!;
        if (result.Claim is { } claim)
        {
            var forward = new BasicProperties
            {
                ContentType = "application/json",
                Type = Topology.Types.ClaimCall,
                DeliveryMode = DeliveryModes.Transient,
                ReplyTo = delivery.BasicProperties.ReplyTo,
                CorrelationId = delivery.BasicProperties.CorrelationId,
                Headers = new Dictionary<string, object?> { [Topology.MessageTypeHeader] = ClaimUrn },
            };
            await channel.BasicPublishAsync("", Topology.RouterQueue, false, forward, Wire.Serialize(claim));
        }
        else
        {
            logger.LogWarning("Rejected a claim for call {CallId} from {App}: {Reason}", result.CallId, result.App, result.Error);
            var reply = ClaimReply.Reject(result.CallId, result.App, RejectReason.InvalidRequest, result.Error!);
            if (!string.IsNullOrEmpty(delivery.BasicProperties.ReplyTo))
            {
                var answer = new BasicProperties
                {
                    ContentType = "application/json",
                    Type = Topology.Types.ClaimReply,
                    DeliveryMode = DeliveryModes.Transient,
                    CorrelationId = delivery.BasicProperties.CorrelationId,
                };
                await channel.BasicPublishAsync("", delivery.BasicProperties.ReplyTo, false, answer, Wire.Serialize(reply));
            }
            var parked = new BasicProperties(delivery.BasicProperties)
            {
                Headers = new Dictionary<string, object?>(delivery.BasicProperties.Headers ?? new Dictionary<string, object?>())
                {
                    ["x-error"] = Encoding.UTF8.GetBytes(result.Error!),
                },
            };
            await channel.BasicPublishAsync("", Topology.ClaimErrorQueue, false, parked, delivery.Body);
        }
        await channel.BasicAckAsync(delivery.DeliveryTag, false);
    }
}
