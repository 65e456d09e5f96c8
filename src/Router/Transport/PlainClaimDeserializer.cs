using System.Net.Mime;
using CallRouter.Messages;
using CallRouter.Router.Observability;
using MassTransit;
using MassTransit.Context;
using MassTransit.Serialization;

namespace CallRouter.Router.Transport;

/// <summary>A claim that could not be read; the router answers it "invalid-request" and parks it in router_error.</summary>
public sealed record InvalidClaim(Guid? CallId, string? App, string Error);

/// <summary>
/// JSON for the router queue. Our own components name each message's type in the MT-MessageType header. Apps send
/// plain JSON with no header, and MassTransit would offer that to every message type the saga consumes; so a
/// header-less delivery is read strictly, here, as a claim (or as an <see cref="InvalidClaim"/> with the reason),
/// and offered as that one type only.
/// </summary>
public sealed class PlainClaimSerializerFactory : ISerializerFactory
{
    private readonly SystemTextJsonRawMessageSerializer _json = new(RawSerializerOptions.AddTransportHeaders | RawSerializerOptions.CopyHeaders);

    public ContentType ContentType => _json.ContentType;

    public IMessageSerializer CreateSerializer() => _json;

    public IMessageDeserializer CreateDeserializer() => new Deserializer(_json);

    private sealed class Deserializer(IMessageDeserializer json) : IMessageDeserializer
    {
        private static readonly MessageBody EmptyObject = new BytesMessageBody("{}"u8.ToArray());

        public ContentType ContentType => json.ContentType;

        public void Probe(ProbeContext context) => json.Probe(context);

        public ConsumeContext Deserialize(ReceiveContext receiveContext)
        {
            if (receiveContext.TransportHeaders.TryGetHeader(Topology.MessageTypeHeader, out _))
                return json.Deserialize(receiveContext);

            // The claim is read by ClaimParser alone, so even a body that is not JSON gets its precise answer; the
            // consume context keeps the original delivery, so router_error holds the body as it came.
            var result = ClaimParser.Parse(receiveContext.Body.GetBytes());
            var headersOnly = json.Deserialize(EmptyObject, receiveContext.TransportHeaders, receiveContext.InputAddress);
            return new SingleMessageConsumeContext(new BodyConsumeContext(receiveContext, headersOnly),
                result.Claim ?? (object)new InvalidClaim(result.CallId, result.App, result.Error!));
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

/// <summary>Answers an unreadable claim with the reason, then fails it so MassTransit parks it in router_error with that reason.</summary>
public sealed class InvalidClaimConsumer(IBus bus, RouterMetrics metrics) : IConsumer<InvalidClaim>
{
    public async Task Consume(ConsumeContext<InvalidClaim> context)
    {
        var claim = context.Message;
        // Sent through the bus, not the consume context: the outbox would drop it when this consume fails.
        await Outbound.Reply(bus, Outbound.ReplyRouteOf(context), ClaimReply.Reject(claim.CallId, claim.App, RejectReason.InvalidRequest, claim.Error), metrics);
        throw new InvalidMessageException($"invalid claim: {claim.Error}");
    }
}

/// <summary>A message that cannot be taken: MassTransit parks it in the router's _error queue with this reason.</summary>
public sealed class InvalidMessageException(string message) : Exception(message);
