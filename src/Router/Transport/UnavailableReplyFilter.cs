using CallRouter.Messages;
using CallRouter.Router.Observability;
using CallRouter.Router.Saga;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CallRouter.Router.Transport;

/// <summary>
/// The last word on a claim whose handling failed for good (the database or the broker still failing after the
/// retries; not a lost broker connection, after which the message is handled again): the app is answered
/// "unavailable", so it can claim again, instead of waiting for an answer that never comes; the claim is then parked
/// in router_error as before. It runs in the error pipe, once per failed delivery (after every retry), and nothing
/// else was sent for the claim: the in-memory outbox drops what failed attempts would have sent. So every claim gets
/// exactly one answer. Claims refused as invalid or forbidden were answered already (<see cref="InvalidClaimConsumer"/>).
/// </summary>
public sealed class UnavailableReplyFilter(IServiceProvider services, RouterMetrics metrics, ILogger logger) : IFilter<ExceptionReceiveContext>
{
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(2);

    public async Task Send(ExceptionReceiveContext context, IPipe<ExceptionReceiveContext> next)
    {
        if (Outbound.ConnectionLost(context.Exception))
        {
            // The bus lost its node (a cluster node killed or cut off): neither answer nor park. The message goes back
            // to the queue (with the connection gone the broker returns it by itself) and is handled again on the node
            // the bus moves to, where the saga answers it as it decided; "unavailable" now could contradict that.
            logger.LogWarning("A message was not handled: the connection to RabbitMQ was lost ({Error}); it will be handled again",
                context.Exception.Message);
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(context.Exception);
        }
        if (context.Exception is not InvalidMessageException
            && context.TryGetPayload<RabbitMqBasicConsumeContext>(out var delivery)
            && (delivery.Exchange == Topology.ClaimExchange || !context.TransportHeaders.TryGetHeader(Topology.MessageTypeHeader, out _))
            && ClaimParser.Parse(context.GetBody()).Claim is { } claim)
        {
            logger.LogWarning(context.Exception, "Call {CallId}: the claim by {App} could not be decided; answered \"unavailable\"", claim.CallId, claim.App);
            var reply = ClaimReply.Reject(claim.CallId, claim.App, RejectReason.Unavailable,
                $"the router could not decide this claim now ({context.Exception.GetType().Name}); claim again");
            try
            {
                // Through the bus: nothing in a failed consume may send.
                // Bounded: with the broker away (a cluster node lost) the send would wait for the connection, and a
                // fault pipe that never returns holds the endpoint's consumers and so stops every other claim.
                await Outbound.Reply(services.GetRequiredService<IBus>(), new ReplyRoute(delivery.Properties.ReplyTo, delivery.Properties.CorrelationId),
                    reply, metrics, offered: false).WaitAsync(ReplyTimeout);
            }
            catch (Exception replyFailed)
            {
                logger.LogError(replyFailed, "Call {CallId}: the claim by {App} failed and could not be answered", claim.CallId, claim.App);
            }
        }
        await next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("unavailable-reply");
}
