using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace CallRouter.AsteriskAdapter.Broker;

/// <summary>
/// Admission control: reads how many messages wait in the router's queue (a passive declare, every
/// <see cref="AdapterOptions.BacklogCheckInterval"/>) and says when new calls must be shed. Past its capacity the router
/// would decide every call late, the adapter would fall back on almost all of them at deadline + grace, and goodput
/// would collapse; turning away the calls it cannot serve at once (FAILED/overloaded, no broadcast) keeps the rest
/// routed and the backlog short, so the system is clean again as soon as the overload ends. The ready count is what
/// the RabbitMQ console shows for the router queue, so operators read the same number.
/// </summary>
public sealed class RouterBacklog(AdapterBroker broker, IOptions<AdapterOptions> options, ILogger<RouterBacklog> logger)
{
    private readonly AdapterOptions _options = options.Value;
    private long _ready;
    private volatile bool _overloaded;

    /// <summary>Messages ready in the router's queue at the last check (0 before the first, or when it failed).</summary>
    public long Ready => Interlocked.Read(ref _ready);

    /// <summary>True while the router's backlog is over <see cref="AdapterOptions.ShedAboveRouterBacklog"/>: new calls are shed.</summary>
    public bool Overloaded => _overloaded;

    public async Task Watch(CancellationToken stoppingToken)
    {
        if (_options.ShedAboveRouterBacklog <= 0)
            return;
        using var timer = new PeriodicTimer(_options.BacklogCheckInterval);
        IChannel? channel = null;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    if (channel is not { IsOpen: true })
                    {
                        channel?.Dispose();
                        channel = await broker.OpenChannel(stoppingToken);
                    }
                    var queue = await channel.QueueDeclarePassiveAsync(Topology.RouterQueue, stoppingToken);
                    Update(queue.MessageCount);
                }
                catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
                {
                    // No router queue yet, or the broker is away: nothing to measure, so nothing is shed (the
                    // adapter's deadline fallback covers calls the router cannot hear).
                    logger.LogDebug("Router backlog not read: {Error}", exception.Message);
                    Update(0);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            channel?.Dispose();
        }
    }

    private void Update(long ready)
    {
        Interlocked.Exchange(ref _ready, ready);
        var overloaded = ready > _options.ShedAboveRouterBacklog;
        if (overloaded == _overloaded)
            return;
        _overloaded = overloaded;
        if (overloaded)
            logger.LogWarning("The router's queue holds {Ready} messages (Adapter__ShedAboveRouterBacklog is {Limit}): new calls go back to the dialplan at once as FAILED/overloaded",
                ready, _options.ShedAboveRouterBacklog);
        else
            logger.LogWarning("The router's queue is down to {Ready} messages: calls are offered again", ready);
    }
}
