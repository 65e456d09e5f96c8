using System.Threading.Channels;
using CallRouter.Messages;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.Router.Transport;

/// <summary>
/// Claim tallies (a decided call's claim count, for its CDR) go to their adapter in batches: the first tally waits
/// <see cref="RouterOptions.TallyBatchDelay"/> for those that follow, then all of them leave in one
/// <see cref="ClaimTallies"/> per adapter. At 300 calls/s that is one message for about six calls instead of one each.
/// A batch the broker did not take is sent again every second until it is taken or the router stops. What a router
/// killed within the delay had not sent is lost: those CDRs are written with the claim count unknown, as when any
/// tally never comes (the adapter waits Adapter__TallyWait for it).
/// </summary>
public sealed class TallyBatcher(IServiceProvider services, IOptions<RouterOptions> options, ILogger<TallyBatcher> logger) : BackgroundService
{
    /// <summary>At most this many tallies in one message (about 110 bytes each).</summary>
    public const int MaxPerMessage = 500;

    private static readonly Uri CommandExchange = new($"exchange:{Topology.CommandExchange}?type=direct");

    private readonly Channel<(string Node, ClaimTally Tally)> _queue =
        Channel.CreateUnbounded<(string, ClaimTally)>(new UnboundedChannelOptions { SingleReader = true });

    private long _queued;

    /// <summary>Tallies queued since start (for tests).</summary>
    internal long Queued => Interlocked.Read(ref _queued);

    /// <summary>Queues a tally for the adapter of <paramref name="node"/>; it leaves with the next batch.</summary>
    public void Add(string node, ClaimTally tally)
    {
        Interlocked.Increment(ref _queued);
        _queue.Writer.TryWrite((node, tally));
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var bus = services.GetRequiredService<IBus>();
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                if (options.Value.TallyBatchDelay > TimeSpan.Zero)
                    await Task.Delay(options.Value.TallyBatchDelay, stoppingToken);
                await SendQueued(bus, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping (before the bus does): what is queued goes now, once.
            try
            {
                await SendQueued(bus, CancellationToken.None, retry: false);
            }
            catch (Exception exception)
            {
                logger.LogWarning("Claim tallies queued at shutdown were not sent ({Error}): their CDRs will have the claim count unknown", exception.Message);
            }
        }
    }

    private async Task SendQueued(IBus bus, CancellationToken cancellationToken, bool retry = true)
    {
        var byNode = new Dictionary<string, List<ClaimTally>>(StringComparer.Ordinal);
        while (_queue.Reader.TryRead(out var item))
        {
            if (!byNode.TryGetValue(item.Node, out var tallies))
                byNode[item.Node] = tallies = [];
            tallies.Add(item.Tally);
        }
        foreach (var (node, tallies) in byNode)
            foreach (var chunk in tallies.Chunk(MaxPerMessage))
                await Send(bus, node, new ClaimTallies(chunk), cancellationToken, retry);
    }

    private async Task Send(IBus bus, string node, ClaimTallies batch, CancellationToken cancellationToken, bool retry)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                // Bounded by the send deadline, as every send of the router (a stalled connection is then replaced).
                var endpoint = await bus.GetSendEndpoint(CommandExchange);
                await endpoint.Send(batch, send => Outbound.Stamp(send, Topology.Types.ClaimTallies, node, null), Outbound.SendDeadline());
                return;
            }
            catch (Exception exception) when (retry && !cancellationToken.IsCancellationRequested)
            {
                if (attempt == 1)
                    logger.LogWarning("{Count} claim tallies for adapter {Node} were not sent ({Error}); trying again every second", batch.Tallies.Count, node, exception.Message);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }
}
