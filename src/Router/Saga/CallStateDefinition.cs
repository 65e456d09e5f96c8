using CallRouter.Messages;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;

namespace CallRouter.Router.Saga;

/// <summary>
/// The call saga's policies on the router queue (MassTransit's saga definition): retries for a database hiccup and for a
/// lost race, the in-memory outbox, and, with the saga in PostgreSQL, one message per call at a time in this process.
/// </summary>
public sealed class CallStateDefinition(IOptions<RouterOptions> options) : SagaDefinition<CallState>
{
    protected override void ConfigureSaga(IReceiveEndpointConfigurator endpoint, ISagaConfigurator<CallState> saga, IRegistrationContext context)
    {
        var router = options.Value;
        // On the endpoint, in this order: retry outside the outbox, so what a failed attempt would have sent is dropped
        // and the retry starts afresh; the invalid-claim consumer on the same queue runs inside them too.
        endpoint.UseMessageRetry(r =>
        {
            // The database restarting, failing over or cutting connections: worth a few tries with back-off
            // (about 2 s in all, within a call's usual timeout) before the claim is answered "unavailable".
            r.Handle<Exception>(TransientDatabaseError);
            r.Intervals(50, 150, 300, 600, 1000);
        });
        endpoint.UseMessageRetry(r =>
        {
            // A conflict means another handler has just committed this call's newer state, so retrying at
            // once reads it: no back-off is needed for progress, and any would only add latency.
            r.Handle<ConcurrencyException>();
            r.Immediate(20);
        });
        // Concurrent delivery: every send of a consume is attempted, so when the node is lost under them each one fails
        // on its own and UnconfirmedResender sends it again (in order, a failed decision skipped the answer behind it).
        endpoint.UseInMemoryOutbox(context, o => o.ConcurrentMessageDelivery = true);
        if (router.SagaRepository == SagaStore.Postgres)
        {
            // Messages for one call run one at a time in this process, so only another router can race a
            // saga update (the in-memory repository locks per call by itself).
            var partitioner = endpoint.CreatePartitioner(router.ConcurrentMessageLimit);
            endpoint.UsePartitioner<CallBroadcast>(partitioner, c => c.Message.CallId);
            endpoint.UsePartitioner<ClaimCall>(partitioner, c => c.Message.CallId);
            endpoint.UsePartitioner<CallEnded>(partitioner, c => c.Message.CallId);
            endpoint.UsePartitioner<BroadcastDeadline>(partitioner, c => c.Message.CallId);
            endpoint.UsePartitioner<UnknownCallExpired>(partitioner, c => c.Message.CallId);
            endpoint.UsePartitioner<ClaimWindowClosed>(partitioner, c => c.Message.CallId);
            endpoint.UsePartitioner<ForgetCall>(partitioner, c => c.Message.CallId);
        }
    }

    /// <summary>
    /// A PostgreSQL error that may pass if tried again: Npgsql's own judgement (I/O, timeouts, overload), plus a
    /// connection the server ended (class 57P: terminated by an administrator, a restart, a failover) or lost (class 08).
    /// </summary>
    private static bool TransientDatabaseError(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
            if (e is NpgsqlException { IsTransient: true } || e is PostgresException { SqlState: var state } && (state.StartsWith("57P") || state.StartsWith("08")))
                return true;
        return false;
    }
}
