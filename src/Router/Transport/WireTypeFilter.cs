using CallRouter.Messages;
using CallRouter.Router.Saga;
using MassTransit;
using MassTransit.Context;

namespace CallRouter.Router.Transport;

/// <summary>A message that cannot be taken: it is parked in the router's _error queue with this reason.</summary>
public sealed class InvalidMessageException(string message) : Exception(message);

/// <summary>
/// Decides which single message type a delivery is, from its AMQP <c>type</c> property (none means a claim, so apps
/// need no framework headers), and turns a bad claim away with an "invalid-request" reply before it reaches the saga.
/// Without this, plain JSON would be offered to every message type the saga consumes.
/// </summary>
public sealed class WireTypeFilter : IFilter<ConsumeContext>
{
    private static readonly HashSet<string> Accepted =
    [
        Topology.Types.ClaimCall, Topology.Types.CallBroadcast, Topology.Types.CallEnded,
        nameof(BroadcastDeadline), nameof(UnknownCallExpired), nameof(ForgetCall),
    ];

    public async Task Send(ConsumeContext context, IPipe<ConsumeContext> next)
    {
        var declared = context.TryGetPayload<RabbitMqBasicConsumeContext>(out var amqp) ? amqp.Properties.Type : null;
        var type = string.IsNullOrEmpty(declared) ? Topology.Types.ClaimCall : declared;
        if (!Accepted.Contains(type))
            throw new InvalidMessageException($"unknown message type '{type}'");

        if (type == Topology.Types.ClaimCall)
        {
            var length = context.ReceiveContext.Body.Length ?? 0;
            var result = length > Wire.MaxMessageBytes
                ? new ClaimParser.Result(null, null, null, $"message is {length} bytes; the limit is {Wire.MaxMessageBytes}")
                : ClaimParser.Parse(context.ReceiveContext.Body.GetBytes());
            if (result.Error is { } error)
            {
                var reply = ClaimReply.Reject(result.CallId, result.App, RejectReason.InvalidRequest, error);
                await Outbound.Reply(context, Outbound.ReplyRouteOf(context), reply);
                throw new InvalidMessageException($"invalid claim: {error}");
            }
        }

        await next.Send(new SingleTypeConsumeContext(context, type));
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("wireType");

    /// <summary>Offers the delivery as the one declared type only.</summary>
    private sealed class SingleTypeConsumeContext(ConsumeContext context, string typeName) : ConsumeContextProxy(context)
    {
        public override bool HasMessageType(Type messageType) => messageType.Name == typeName && base.HasMessageType(messageType);

        public override bool TryGetMessage<T>(out ConsumeContext<T> consumeContext)
        {
            if (typeof(T).Name == typeName)
                return base.TryGetMessage(out consumeContext);
            consumeContext = null!;
            return false;
        }
    }
}
