using System.Threading.Channels;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace CallRouter.AsteriskAdapter.Broker;

/// <summary>A message waiting in the <see cref="BrokerOutbox"/>; <paramref name="Expires"/> becomes its per-message TTL.</summary>
public sealed record OutboundMessage(string Exchange, string RoutingKey, string Type, Guid CallId, byte[] Body, DateTimeOffset? Expires = null)
{
    /// <summary>CallEnded for the router (the adapter ended a broadcast itself).</summary>
    public static OutboundMessage For(CallEnded ended) =>
        new(Topology.EventExchange, "", Topology.Types.CallEnded, ended.CallId, Wire.Serialize(ended));

    /// <summary>CallFailed for the winner's queue (the app was told `accepted`).</summary>
    public static OutboundMessage For(CallFailed failed) =>
        new(Topology.BroadcastExchange, failed.Winner, Topology.Types.CallFailed, failed.CallId, Wire.Serialize(failed));
}

/// <summary>
/// Call events published off the ARI event loop: the loop only queues them, so a broker hiccup never stalls or drops
/// the ARI WebSocket; one sender publishes them with confirms and retries each until the broker takes it. Holds at
/// most <see cref="Capacity"/> messages (an outage longer than that loses the oldest, counted and logged).
/// </summary>
public sealed class BrokerOutbox
{
    public const int Capacity = 10_000;

    private readonly AdapterBroker _broker;
    private readonly ILogger<BrokerOutbox> _logger;
    private readonly Channel<OutboundMessage> _queue;
    private readonly ResiliencePipeline _retry;
    private long _dropped;

    public BrokerOutbox(AdapterBroker broker, ILogger<BrokerOutbox> logger)
    {
        (_broker, _logger) = (broker, logger);
        _queue = Channel.CreateBounded<OutboundMessage>(
            new BoundedChannelOptions(Capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            dropped =>
            {
                Interlocked.Increment(ref _dropped);
                logger.LogError("Call event {Type} for call {CallId} dropped: the outbox is full", dropped.Type, dropped.CallId);
            });
        // "broker-outbox": a call event is retried until the broker is back (or the adapter stops).
        _retry = new ResiliencePipelineBuilder { Name = "broker-outbox" }
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not OperationCanceledException),
            MaxRetryAttempts = int.MaxValue,
            Delay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromSeconds(2),
            BackoffType = DelayBackoffType.Exponential,
            OnRetry = args =>
            {
                if (args.AttemptNumber == 0)
                    logger.LogWarning("A call event could not be published ({Error}); retrying until the broker takes it", args.Outcome.Exception?.Message);
                return default;
            },
        })
        .Build();
    }

    /// <summary>Messages waiting for the broker.</summary>
    public int Pending => _queue.Reader.Count;

    /// <summary>Messages dropped because the outbox was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Queues a message; never blocks and never throws.</summary>
    public void Enqueue(OutboundMessage message)
    {
        if (!_queue.Writer.TryWrite(message))
            _logger.LogError("Call event {Type} for call {CallId} dropped: the outbox is closed", message.Type, message.CallId);
    }

    /// <summary>Publishes queued messages in order until <paramref name="stopping"/>.</summary>
    public async Task Run(CancellationToken stopping)
    {
        try
        {
            await foreach (var message in _queue.Reader.ReadAllAsync(stopping))
                await _retry.ExecuteAsync(async _ => await _broker.PublishConfirmed(message), stopping);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        if (Pending > 0)
            _logger.LogWarning("{Count} call events not published at shutdown", Pending);
    }
}
