using CallRouter.Messages;
using MassTransit;
using MassTransit.RabbitMqTransport;
using MassTransit.Serialization;
using RabbitMQ.Client;

namespace CallRouter.Router.Transport;

/// <summary>
/// Parks what the router cannot take in an _error (or _skipped) queue, as MassTransit's own transport filters do,
/// but without the AMQP user_id. RabbitMQ refuses a publish whose user_id is not the publisher's own user and closes
/// the channel; MassTransit's move copies the delivery's properties as they are, so an app's claim (user_id = the
/// app's user) could never be parked and would come back forever. The sender's user is kept in x-original-user-id.
/// </summary>
public sealed class ParkFilter(string queue, Dictionary<string, object?> queueArguments) : IFilter<ExceptionReceiveContext>, IFilter<ReceiveContext>
{
    public const string OriginalUserIdHeader = "x-original-user-id";

    public Task Send(ExceptionReceiveContext context, IPipe<ExceptionReceiveContext> next) => Park(context, () => next.Send(context));

    public Task Send(ReceiveContext context, IPipe<ReceiveContext> next) => Park(context, () => next.Send(context));

    private async Task Park(ReceiveContext context, Func<Task> next)
    {
        var channel = context.GetPayload<ChannelContext>();
        var delivery = context.GetPayload<RabbitMqBasicConsumeContext>();
        var declared = channel.GetOrAddPayload(() => new Declared());
        if (!declared.Done)
        {
            // The same declarations as MassTransit's error transport (and infra/broker-definitions.sh).
            await channel.ExchangeDeclare(queue, ExchangeType.Fanout, true, false, new Dictionary<string, object?>(), context.CancellationToken);
            await channel.QueueDeclare(queue, true, false, false, queueArguments, context.CancellationToken);
            await channel.QueueBind(queue, queue, "", new Dictionary<string, object?>(), context.CancellationToken);
            declared.Done = true;
        }

        var properties = new BasicProperties(delivery.Properties)
        {
            UserId = null,
            Expiration = null, // parked messages stay until someone looks at them
            Headers = new Dictionary<string, object?>(delivery.Properties.Headers ?? new Dictionary<string, object?>(), StringComparer.OrdinalIgnoreCase),
        };
        if (delivery.Properties.UserId is { } userId)
            properties.Headers[OriginalUserIdHeader] = userId;
        var headers = new DictionarySendHeaders();
        headers.SetHostHeaders();
        if (context is ExceptionReceiveContext failed)
            headers.SetExceptionHeaders(failed);
        else
            headers.Set(MessageHeaders.Reason, "skip");
        foreach (var (key, value) in headers.GetAll())
            properties.Headers[key] = value is string or int or long or bool or byte[] or null ? value : value.ToString();
        await channel.BasicPublishAsync(queue, delivery.RoutingKey, true, properties, context.GetBody(), true, context.CancellationToken);
        await next();
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("park").Add("queue", queue);

    private sealed class Declared
    {
        public bool Done { get; set; }
    }
}
