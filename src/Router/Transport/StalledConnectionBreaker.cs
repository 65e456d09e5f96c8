using CallRouter.Common;
using MassTransit;
using MassTransit.RabbitMqTransport;
using MassTransit.RabbitMqTransport.Configuration;
using MassTransit.Transports;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.Router.Transport;

/// <summary>
/// With quorum queues (a cluster), reconnects the router when a send runs past its deadline while its connection stays
/// open. After a partition, RabbitMQ 3.x can leave a channel unable to enqueue to a quorum queue whose leader was on the
/// cut-off node: its sends are taken but never confirmed, for good (rabbitmq-server#14589, fixed in 4.2). Every send of
/// the router's channels then fails, and so does every resend: routing never resumes. A new connection has new channels,
/// which start afresh. MassTransit reconnects (to any node of the list) as after a lost node: the messages in hand go
/// back to the queue and are handled again, and <see cref="UnconfirmedResender"/> sends again what did not leave.
/// It waits <see cref="RouterOptions.StalledSendReconnectAfter"/> from the first late send of a stall: channels opened
/// before the majority has declared the cut-off node down stall too, and a reconnect made that early needed another (the
/// partition test failed 3 runs of 15 on 2026-11-29; waiting, it passed 6 of 6).
/// </summary>
public sealed class StalledConnectionBreaker(IServiceProvider services, IOptions<RouterOptions> options, ILogger<StalledConnectionBreaker> logger)
    : ISendObserver
{
    /// <summary>
    /// Late sends this soon after a reconnection were in flight on the old connection: they start no new stall. A stall
    /// with no late send this long before its wait is up cleared by itself.
    /// </summary>
    public static readonly TimeSpan Quiet = Outbound.SendTimeout;

    private readonly TimeSpan _holdOff = options.Value.StalledSendReconnectAfter;
    private StallWatch? _stall;
    private long _breaks;

    /// <summary>How many times the router closed a stalled connection (for tests and logs).</summary>
    public long Breaks => Interlocked.Read(ref _breaks);

    public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class
    {
        if (!Outbound.RanPastDeadline(exception))
            return Task.CompletedTask;
        LazyInitializer.EnsureInitialized(ref _stall, () => new StallWatch(_holdOff, Quiet, Break)).Late();
        return Task.CompletedTask;
    }

    private async Task Break()
    {
        try
        {
            var host = (IRabbitMqHostConfiguration)services.GetRequiredService<IBusInstance>().HostConfiguration;
            using var deadline = new CancellationTokenSource(Outbound.SendTimeout);
            await host.ConnectionContextSupervisor.Send(Pipe.ExecuteAsync<ConnectionContext>(async connection =>
            {
                if (!connection.Connection.IsOpen)
                    return;
                logger.LogWarning("Sends to RabbitMQ have gone unconfirmed past their {Seconds} s deadline for {HoldOff} s on an open connection "
                    + "({Endpoint}): reconnecting, so sends go on new channels", Outbound.SendTimeout.TotalSeconds, _holdOff.TotalSeconds, connection.Description);
                Interlocked.Increment(ref _breaks);
                await connection.Connection.CloseAsync(200, "sends not confirmed: reconnecting", TimeSpan.FromSeconds(2), false, CancellationToken.None);
            }), deadline.Token);
        }
        catch (Exception exception)
        {
            logger.LogWarning("A stalled RabbitMQ connection could not be closed ({Error}); trying again at the next late send", exception.Message);
        }
    }

    public Task PreSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;

    public Task PostSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;
}
