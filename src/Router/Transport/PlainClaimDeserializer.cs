using System.Net.Mime;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Router.Observability;
using MassTransit;
using MassTransit.Context;
using MassTransit.Serialization;

namespace CallRouter.Router.Transport;

/// <summary>
/// A claim the router refuses before the saga sees it: unreadable ("invalid-request") or sent by a RabbitMQ user that
/// does not own its app ("forbidden"). The router answers it with the reason and parks it in router_error.
/// </summary>
public sealed record InvalidClaim(Guid? CallId, string? App, string Reason, string Error);

/// <summary>
/// JSON for the router queue. Our own components name each message's type in the MT-MessageType header. Apps send
/// plain JSON with no header, and MassTransit would offer that to every message type the saga consumes; so a
/// header-less delivery is read strictly, here, as a claim (or as an <see cref="InvalidClaim"/> with the reason),
/// and offered as that one type only. Whatever came through the claim exchange (the only way in for an app) is a
/// claim, headers or not, and it stands only if its AMQP user_id (checked by the broker) owns the claimed app.
/// </summary>
public sealed class PlainClaimSerializerFactory(AppOwnership ownership) : ISerializerFactory
{
    private readonly SystemTextJsonRawMessageSerializer _json = new(RawSerializerOptions.AddTransportHeaders | RawSerializerOptions.CopyHeaders);

    public ContentType ContentType => _json.ContentType;

    public IMessageSerializer CreateSerializer() => _json;

    public IMessageDeserializer CreateDeserializer() => new Deserializer(_json, ownership);

    private sealed class Deserializer(IMessageDeserializer json, AppOwnership ownership) : IMessageDeserializer
    {
        private static readonly MessageBody EmptyObject = new BytesMessageBody("{}"u8.ToArray());

        public ContentType ContentType => json.ContentType;

        public void Probe(ProbeContext context) => json.Probe(context);

        public ConsumeContext Deserialize(ReceiveContext receiveContext)
        {
            var amqp = receiveContext.TryGetPayload<RabbitMqBasicConsumeContext>(out var delivery) ? delivery : null;
            var fromApp = amqp?.Exchange == Topology.ClaimExchange;
            if (!fromApp && receiveContext.TransportHeaders.TryGetHeader(Topology.MessageTypeHeader, out _))
                return json.Deserialize(receiveContext);

            // The claim is read by ClaimParser alone, so even a body that is not JSON gets its precise answer; the
            // consume context keeps the original delivery, so router_error holds the body as it came.
            var result = ClaimParser.Parse(receiveContext.Body.GetBytes());
            object message = result.Claim is not { } claim
                ? new InvalidClaim(result.CallId, result.App, RejectReason.InvalidRequest, result.Error!)
                : ownership.Refusal(amqp?.Properties.UserId, claim.App, "claim") is { } refusal
                    ? new InvalidClaim(claim.CallId, claim.App, RejectReason.Forbidden, refusal)
                    : claim;
            var headersOnly = json.Deserialize(EmptyObject, receiveContext.TransportHeaders, receiveContext.InputAddress);
            return new SingleMessageConsumeContext(new BodyConsumeContext(receiveContext, headersOnly), message);
        }

        public SerializerContext Deserialize(MessageBody body, Headers headers, Uri? destinationAddress = null) =>
            json.Deserialize(body, headers, destinationAddress);

        public MessageBody GetMessageBody(string text) => json.GetMessageBody(text);
    }

    /// <summary>Offers the delivery as the one message it was read as, and as no other type.</summary>
    private sealed class SingleMessageConsumeContext(ConsumeContext context, object message) : ConsumeContextProxy(context)
    {
        private ConsumeContext? _typed;

        public override bool HasMessageType(Type messageType) => messageType.IsInstanceOfType(message);

        public override bool TryGetMessage<T>(out ConsumeContext<T> consumeContext)
        {
            if (message is T typed)
            {
                consumeContext = (ConsumeContext<T>)(_typed ??= new MessageConsumeContext<T>(this, typed));
                return true;
            }
            consumeContext = null!;
            return false;
        }
    }
}

/// <summary>Answers a refused claim with the reason, then fails it so MassTransit parks it in router_error with that reason.</summary>
public sealed class InvalidClaimConsumer(IBus bus, RouterMetrics metrics) : IConsumer<InvalidClaim>
{
    public async Task Consume(ConsumeContext<InvalidClaim> context)
    {
        var claim = context.Message;
        // Sent through the bus, not the consume context: the outbox would drop it when this consume fails.
        await Outbound.Reply(bus, Outbound.ReplyRouteOf(context), ClaimReply.Reject(claim.CallId, claim.App, claim.Reason, claim.Error), metrics, offered: false);
        throw new InvalidMessageException($"{(claim.Reason == RejectReason.Forbidden ? "forbidden" : "invalid")} claim: {claim.Error}");
    }
}

/// <summary>
/// A message that cannot be taken: MassTransit parks it in the router's _error queue with this reason. The fault is the
/// sender's, not the router's, so it carries no stack trace: MassTransit's fault log is the reason, in two lines
/// (a flood of bad claims would otherwise be a flood of stack traces).
/// </summary>
public sealed class InvalidMessageException(string message) : Exception(message)
{
    public override string? StackTrace => null;
}
