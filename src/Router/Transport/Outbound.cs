using CallRouter.Messages;
using CallRouter.Router.Observability;
using CallRouter.Router.Saga;
using MassTransit;
using RabbitMQ.Client.Exceptions;

namespace CallRouter.Router.Transport;

/// <summary>Everything the router sends, as plain JSON with AMQP properties apps in any language can read.</summary>
public static class Outbound
{
    // MassTransit publishes to the default exchange, routing key = reply_to, for this name: it serves plain reply queues and direct reply-to alike.
    private static readonly Uri ReplyExchange = new("exchange:amq.rabbitmq.reply-to");
    private static readonly Uri CommandExchange = new($"exchange:{Topology.CommandExchange}?type=direct");
    private static readonly Uri BroadcastExchange = new($"exchange:{Topology.BroadcastExchange}?type=topic");

    /// <summary>
    /// How long any send may take. A send on a connection whose node has just been lost (a cluster node killed or cut
    /// off) can wait forever for a confirm that never comes, and with it the consume and the restart of the receive
    /// endpoint; bounded, the consume fails, the message goes back to the queue and is handled again on another node.
    /// </summary>
    public static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A token that ends a send between <see cref="SendTimeout"/> less one second and <see cref="SendTimeout"/> (the outbox
    /// hands it on to the real send). Sends of the same second share one token, so the hot path does not arm a timer per send.
    /// </summary>
    public static CancellationToken SendDeadline()
    {
        var second = Environment.TickCount64 / 1000;
        var current = Volatile.Read(ref _deadline);
        if (current.Second != second)
        {
            var fresh = new SharedDeadline(second, new CancellationTokenSource(SendTimeout));
            var seen = Interlocked.CompareExchange(ref _deadline, fresh, current);
            current = ReferenceEquals(seen, current) ? fresh : seen;
            if (ReferenceEquals(current, fresh))
                RecentDeadlines[second % RecentDeadlines.Length] = fresh.Source.Token;
        }
        return current.Source.Token;
    }

    private sealed record SharedDeadline(long Second, CancellationTokenSource Source);

    private static SharedDeadline _deadline = new(-1, new CancellationTokenSource());

    // The deadlines of the last 16 seconds: a send ends within SendTimeout of taking its token, and is judged soon after.
    private static readonly CancellationToken[] RecentDeadlines = new CancellationToken[16];

    /// <summary>The token is one <see cref="SendDeadline"/> handed out (recently): a send cancelled by it ran out of time.</summary>
    public static bool IsSendDeadline(CancellationToken token) => token.CanBeCanceled && Array.IndexOf(RecentDeadlines, token) >= 0;

    /// <summary>
    /// The failure is the broker connection going away under a send: a closed channel or connection, or a send that
    /// ran past its <see cref="SendDeadline"/> (a confirm the lost node never sends). Any other cancellation (the
    /// database, the host stopping) is not: it would otherwise be taken for a lost node and handled again forever.
    /// </summary>
    public static bool ConnectionLost(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
            if (e is AlreadyClosedException or OperationInterruptedException or RabbitMqConnectionException || RanPastDeadline(e))
                return true;
        return false;
    }

    /// <summary>The send was cancelled by its own <see cref="SendDeadline"/> (not failed by a closed connection).</summary>
    public static bool RanPastDeadline(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
            if (e is OperationCanceledException cancelled && IsSendDeadline(cancelled.CancellationToken))
                return true;
        return false;
    }

    public static ReplyRoute ReplyRouteOf(ConsumeContext context) =>
        context.TryGetPayload<RabbitMqBasicConsumeContext>(out var amqp)
            ? new ReplyRoute(amqp.Properties.ReplyTo, amqp.Properties.CorrelationId)
            : new ReplyRoute(null, null);

    /// <summary>
    /// Answers a claim; the answer is counted when it is actually sent (after the outbox, never for a retried attempt).
    /// <paramref name="offered"/>: the app was in the call's audience, so its name may label the count (bounded series).
    /// </summary>
    public static async Task Reply(ISendEndpointProvider context, ReplyRoute route, ClaimReply reply, RouterMetrics metrics, bool offered)
    {
        if (string.IsNullOrEmpty(route.ReplyTo))
        {
            metrics.ClaimAnswered(reply, offered); // nowhere to answer, but the claim was judged all the same
            return;
        }
        var endpoint = await context.GetSendEndpoint(ReplyExchange);
        await endpoint.Send(reply, send =>
        {
            Stamp(send, Topology.Types.ClaimReply, route.ReplyTo, route.CorrelationId);
            metrics.ClaimAnswered(reply, offered);
        }, SendDeadline());
    }

    /// <summary>
    /// Sends a decision to the call's adapter. <paramref name="countWith"/> counts it as it leaves; null for a decision
    /// sent again (at the deadline, or to a winner claiming twice), which is the same decision and counted once.
    /// </summary>
    public static async Task Continue(ISendEndpointProvider context, string node, ContinueCall command, RouterMetrics? countWith, IReadOnlyList<string> audience)
    {
        var endpoint = await context.GetSendEndpoint(CommandExchange);
        await endpoint.Send(command, send =>
        {
            Stamp(send, Topology.Types.ContinueCall, node, command.CallId.ToString());
            countWith?.Decided(command, audience);
        }, SendDeadline());
    }

    /// <param name="expires">The call's deadline: like its broadcast, the notice expires then (per-message TTL).</param>
    public static async Task NotifyClaimed(ISendEndpointProvider context, IEnumerable<string> audience, CallClaimed claimed, DateTimeOffset? expires)
    {
        var endpoint = await context.GetSendEndpoint(BroadcastExchange);
        var ttl = expires is { } at ? TimeSpan.FromMilliseconds(Math.Max(1, (at - DateTimeOffset.UtcNow).TotalMilliseconds)) : (TimeSpan?)null;
        foreach (var app in audience)
            await endpoint.Send(claimed, send =>
            {
                Stamp(send, Topology.Types.CallClaimed, app, claimed.CallId.ToString());
                if (ttl is { } t)
                    send.TimeToLive = t;
            }, SendDeadline());
    }

    /// <summary>Tells a call's winner that the call it was told `accepted` for failed (on its queue, like the adapter's CallFailed).</summary>
    public static async Task WinnerFailed(ISendEndpointProvider context, CallFailed failed)
    {
        var endpoint = await context.GetSendEndpoint(BroadcastExchange);
        await endpoint.Send(failed, send => Stamp(send, Topology.Types.CallFailed, failed.Winner, failed.CallId.ToString()), SendDeadline());
    }

    /// <summary>Call messages live for seconds: transient, typed by the AMQP type property, correlated by the caller's id.</summary>
    public static void Stamp<T>(SendContext<T> send, string type, string routingKey, string? correlationId) where T : class
    {
        send.Durable = false;
        send.Headers.Set(Topology.MessageTypeHeader, MessageUrn.ForTypeString<T>());
        send.SetRoutingKey(routingKey);
        if (send.TryGetPayload<RabbitMqSendContext>(out var amqp))
        {
            amqp.BasicProperties.Type = type;
            if (correlationId is not null)
                amqp.BasicProperties.CorrelationId = correlationId;
        }
    }
}
