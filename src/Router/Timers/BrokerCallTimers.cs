using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Router.Transport;
using MassTransit;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace CallRouter.Router.Timers;

/// <summary>
/// Durable timers on the broker: a timer is a message sent to a wait queue that nobody consumes, with a per-message
/// expiration; when it expires RabbitMQ dead-letters it into the router queue, where any router takes it, even if
/// the one that set it has died. RabbitMQ only expires the message at the head of a queue, so every message in one
/// wait queue has the same expiration (the queue's bucket) and the queue stays in due order. The buckets are fixed
/// (1-9 × 1, 10, 100, 1000, 10000 ms: <see cref="Buckets"/>), so there are at most 45 wait queues whatever timeouts
/// the dialplan uses: a timer waits in the largest bucket not longer than what remains, and when it comes back early
/// <see cref="TimerHopFilter"/> sends it on to the next bucket (a 2000 ms deadline takes one hop, 1500 ms two; a timer may
/// fire up to <see cref="MaxLateness"/> late to save a hop, never early). The
/// due time travels in the <see cref="DueHeader"/> header. Timers cannot be cancelled: the saga ignores those that no
/// longer apply. They are sent through the consume context, so the in-memory outbox sends them only if the saga
/// change that set them was saved.
/// </summary>
public sealed class BrokerCallTimers(IOptions<BrokerOptions> broker, TimeProvider clock) : ICallTimers, IAsyncDisposable
{
    /// <summary>When the timer is due, in Unix milliseconds on the clock of the router that set it.</summary>
    public const string DueHeader = "x-timer-due";

    /// <summary>The wait queues' delays in ms, ascending.</summary>
    public static readonly long[] Buckets = [.. new long[] { 1, 10, 100, 1000, 10000 }.SelectMany(scale => Enumerable.Range(1, 9).Select(d => d * scale))];

    private static readonly Uri TimerExchange = new($"exchange:{Topology.TimerExchange}?type=direct");
    private static readonly HashSet<string> DeathHeaders = ["x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"];
    private readonly Lazy<Task>[] _lanes = [.. Buckets.Select(_ => (Lazy<Task>)null!)];
    private readonly SemaphoreSlim _connecting = new(1, 1);
    private readonly SemaphoreSlim _hopping = new(1, 1);
    private IConnection? _connection;
    private IChannel? _hopChannel;

    /// <summary>
    /// How late a timer may fire rather than take one more hop: 1 % of what remains, between 1 and 20 ms (far inside the
    /// adapters' fallback grace). A delay computed a moment after its due time was set is a hair short of the round
    /// figure it was meant as (9,999.97 ms for a 10 s retention): without this it would wait 9,000 + 900 + 90 + 9 ms, four
    /// hops through the router queue instead of one.
    /// </summary>
    public static readonly TimeSpan MaxLateness = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// The largest bucket not longer than <paramref name="remaining"/> plus its slack (1 % of it, between 1 ms and
    /// <see cref="MaxLateness"/>); the smallest bucket for less than 1 ms.
    /// </summary>
    public static int BucketFor(TimeSpan remaining)
    {
        var slack = Math.Clamp(remaining.TotalMilliseconds / 100, 1, MaxLateness.TotalMilliseconds);
        var ms = (long)(remaining.TotalMilliseconds + slack);
        var index = Array.BinarySearch(Buckets, ms);
        return index >= 0 ? index : Math.Max(0, ~index - 1);
    }

    public async Task Schedule<T>(ConsumeContext context, DateTimeOffset due, TimeSpan lane, T message, Func<bool>? obsolete = null) where T : class
    {
        var bucket = BucketFor(due - clock.GetUtcNow());
        await Lane(bucket);
        var endpoint = await context.GetSendEndpoint(TimerExchange);
        await endpoint.Send(message, send =>
        {
            Outbound.Stamp(send, typeof(T).Name, Buckets[bucket].ToString(), null);
            send.Headers.Set(DueHeader, due.ToUnixTimeMilliseconds());
            send.TimeToLive = TimeSpan.FromMilliseconds(Buckets[bucket]);
        }, Outbound.SendDeadline());
    }

    /// <summary>
    /// A timer that came back before it is due (it waited in a shorter bucket than its delay): the same delivery, body and
    /// properties, sent on to the bucket for what remains. False when it is due (within a millisecond).
    /// </summary>
    public async Task<bool> HopIfEarly(ReceiveContext receive)
    {
        if (!receive.TryGetPayload<RabbitMqBasicConsumeContext>(out var delivery)
            || delivery.Exchange == Topology.ClaimExchange // an app's claim is never a timer, whatever its headers
            || delivery.Properties.Headers?.TryGetValue(DueHeader, out var value) != true
            || value is not (long or int)
            || Convert.ToInt64(value) - clock.GetUtcNow().ToUnixTimeMilliseconds() is var remaining && remaining < 1)
            return false;
        var bucket = BucketFor(TimeSpan.FromMilliseconds(remaining));
        await Lane(bucket);
        var properties = new BasicProperties(delivery.Properties)
        {
            Expiration = Buckets[bucket].ToString(),
            UserId = null,
            Headers = delivery.Properties.Headers!.Where(h => !DeathHeaders.Contains(h.Key)).ToDictionary(h => h.Key, h => h.Value),
        };
        // Confirmed before the delivery is acked: the hop goes on a connection of its own, so a router killed between the
        // two could otherwise have its ack reach the broker and the hop not, and the timer would be lost (the adapter's
        // fallback would end the call, router-no-answer). Bounded like every send: a confirm that never comes fails the
        // consume, and the timer is delivered again.
        var channel = await HopChannel();
        using var deadline = new CancellationTokenSource(Outbound.SendTimeout);
        await channel.BasicPublishAsync(Topology.TimerExchange, Buckets[bucket].ToString(), false, properties, receive.GetBody(), deadline.Token);
        return true;
    }

    private async Task<IChannel> HopChannel()
    {
        if (Volatile.Read(ref _hopChannel) is { IsOpen: true } open)
            return open;
        await _hopping.WaitAsync();
        try
        {
            if (_hopChannel is not { IsOpen: true })
                _hopChannel = await (await Connect()).CreateChannelAsync(new CreateChannelOptions(
                    publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
            return _hopChannel;
        }
        finally
        {
            _hopping.Release();
        }
    }

    private Task Lane(int bucket)
    {
        var lane = Volatile.Read(ref _lanes[bucket]);
        if (lane is null)
        {
            Interlocked.CompareExchange(ref _lanes[bucket], new Lazy<Task>(() => DeclareLane(bucket)), null);
            lane = _lanes[bucket];
        }
        return lane.Value;
    }

    private async Task DeclareLane(int bucket)
    {
        var laneMs = Buckets[bucket];
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
            Volatile.Write(ref _lanes[bucket], null!); // the next timer in this bucket tries again
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
            return _connection = await broker.Value.Connect("router timer lanes");
        }
        finally
        {
            _connecting.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_hopChannel is not null)
            await _hopChannel.DisposeAsync();
        if (_connection is not null)
            await _connection.DisposeAsync();
        _connecting.Dispose();
        _hopping.Dispose();
    }
}

/// <summary>Sends a broker timer that came back early on to its next bucket, instead of to the saga.</summary>
public sealed class TimerHopFilter(BrokerCallTimers timers) : IFilter<ConsumeContext>
{
    public async Task Send(ConsumeContext context, IPipe<ConsumeContext> next)
    {
        if (!await timers.HopIfEarly(context.ReceiveContext))
        {
            await next.Send(context);
            return;
        }
        // Handled here: without this the delivery would count as consumed by nobody and be parked in router_skipped.
        if (context.TryGetMessage<Saga.BroadcastDeadline>(out var deadline))
            await context.NotifyConsumed(deadline, TimeSpan.Zero, nameof(TimerHopFilter));
        else if (context.TryGetMessage<Saga.ForgetCall>(out var forget))
            await context.NotifyConsumed(forget, TimeSpan.Zero, nameof(TimerHopFilter));
        else if (context.TryGetMessage<Saga.UnknownCallExpired>(out var unknown))
            await context.NotifyConsumed(unknown, TimeSpan.Zero, nameof(TimerHopFilter));
        else if (context.TryGetMessage<Saga.ClaimWindowClosed>(out var window))
            await context.NotifyConsumed(window, TimeSpan.Zero, nameof(TimerHopFilter));
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("timer-hop");
}
