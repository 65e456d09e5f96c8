using MassTransit;
using MassTransit.RabbitMqTransport;
using MassTransit.RabbitMqTransport.Configuration;
using MassTransit.Transports;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CallRouter.Router.Transport;

/// <summary>
/// With quorum queues (a cluster), reconnects the router when a send runs past its deadline while its connection stays
/// open. After a partition, RabbitMQ 3.x can leave a channel unable to enqueue to a quorum queue whose leader was on the
/// cut-off node: its sends are taken but never confirmed, for good (rabbitmq-server#14589, fixed in 4.2). Every send of
/// the router's channels then fails, and so does every resend: routing never resumes. A new connection has new channels,
/// which start afresh. MassTransit reconnects (to any node of the list) as after a lost node: the messages in hand go
/// back to the queue and are handled again, and <see cref="UnconfirmedResender"/> sends again what did not leave.
/// </summary>
public sealed class StalledConnectionBreaker(IServiceProvider services, ILogger<StalledConnectionBreaker> logger) : ISendObserver
{
    /// <summary>
    /// At most one reconnection per this long (the sends in flight on the old connection fail too). Channels opened
    /// before the majority has declared the cut-off node down (net_ticktime) can stall again, so the next may be needed soon.
    /// </summary>
    public static readonly TimeSpan Quiet = Outbound.SendTimeout;

    private long _lastBreak = long.MinValue / 2; // the first late send may reconnect at once
    private long _breaks;

    /// <summary>How many times the router closed a stalled connection (for tests and logs).</summary>
    public long Breaks => Interlocked.Read(ref _breaks);

    public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class
    {
        if (!Outbound.RanPastDeadline(exception))
            return Task.CompletedTask;
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastBreak);
        if (now - last >= Quiet.TotalMilliseconds && Interlocked.CompareExchange(ref _lastBreak, now, last) == last)
            _ = Task.Run(Break);
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
                logger.LogWarning("A send to RabbitMQ was not confirmed within {Seconds} s on an open connection ({Endpoint}): "
                    + "reconnecting, so sends go on new channels", Outbound.SendTimeout.TotalSeconds, connection.Description);
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
