using System.Collections.Concurrent;
using CallRouter.Messages;
using CallRouter.Router.Transport;
using MassTransit;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace CallRouter.Router.Timers;

/// <summary>
/// Durable timers on the broker: a timer is a message sent to a wait queue that nobody consumes, with a per-message
/// expiration; when it expires RabbitMQ dead-letters it into the router queue, where any router takes it, even if
/// the one that set it has died. RabbitMQ only expires the message at the head of a queue, so each lane (one delay
/// length, e.g. every 2000 ms deadline) has its own queue and stays in due order. Timers cannot be cancelled: the
/// saga ignores those that no longer apply. They are sent through the consume context, so the in-memory outbox
/// sends them only if the saga change that set them was saved.
/// </summary>
public sealed class BrokerCallTimers(IOptions<BrokerOptions> broker, TimeProvider clock) : ICallTimers, IAsyncDisposable
{
    private static readonly Uri TimerExchange = new($"exchange:{Topology.TimerExchange}?type=direct");
    private readonly ConcurrentDictionary<long, Lazy<Task>> _lanes = new();
    private readonly SemaphoreSlim _connecting = new(1, 1);
    private IConnection? _connection;

    public async Task Schedule<T>(ConsumeContext context, DateTimeOffset due, TimeSpan lane, T message) where T : class
    {
        var laneMs = Math.Max(1, (long)Math.Round(lane.TotalMilliseconds));
        await _lanes.GetOrAdd(laneMs, ms => new Lazy<Task>(() => DeclareLane(ms))).Value;
        var delay = due - clock.GetUtcNow();
        var endpoint = await context.GetSendEndpoint(TimerExchange);
        await endpoint.Send(message, send =>
        {
            Outbound.Stamp(send, typeof(T).Name, laneMs.ToString(), null);
            send.TimeToLive = delay > TimeSpan.FromMilliseconds(1) ? delay : TimeSpan.FromMilliseconds(1);
        });
    }

    private async Task DeclareLane(long laneMs)
    {
        try
        {
            var connection = await Connect();
            await using var channel = await connection.CreateChannelAsync();
            await channel.ExchangeDeclareAsync(Topology.TimerExchange, ExchangeType.Direct, durable: true, autoDelete: false);
            var queue = Topology.TimerQueue(laneMs);
            var arguments = broker.Value.DurableQueueArguments();
            arguments["x-dead-letter-exchange"] = "";
            arguments["x-dead-letter-routing-key"] = Topology.RouterQueue;
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments);
            await channel.QueueBindAsync(queue, Topology.TimerExchange, laneMs.ToString());
        }
        catch
        {
            _lanes.TryRemove(laneMs, out _); // the next timer on this lane tries again
            throw;
        }
    }

    private async Task<IConnection> Connect()
    {
        await _connecting.WaitAsync();
        try
        {
            if (_connection is { IsOpen: true })
                return _connection;
            var b = broker.Value;
            var factory = new ConnectionFactory
            {
                VirtualHost = b.VirtualHost, UserName = b.User, Password = b.Password,
                ClientProvidedName = "router timer lanes",
            };
            return _connection = await factory.CreateConnectionAsync(b.Nodes().Select(n => new AmqpTcpEndpoint(n.Host, n.Port)).ToList());
        }
        finally
        {
            _connecting.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
            await _connection.DisposeAsync();
        _connecting.Dispose();
    }
}
