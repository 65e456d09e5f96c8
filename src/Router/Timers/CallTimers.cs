using System.Threading.Channels;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Router.Transport;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CallRouter.Router.Timers;

/// <summary>Delivers a message to the router's own queue at a given time (deadlines, forgetting finished calls).</summary>
public interface ICallTimers
{
    /// <param name="context">The message being handled (durable timers go out through its outbox).</param>
    /// <param name="due">When the message is delivered.</param>
    /// <param name="lane">The timer's nominal delay (e.g. the broadcast timeout): timers on one lane fall due in the order they are set.</param>
    /// <param name="message">What is delivered.</param>
    /// <param name="obsolete">
    /// In-process timers drop the message when this holds at its due time (the saga instance lives in this process, so
    /// a timer that no longer matters costs no broker round trip); durable timers cannot look, and always deliver.
    /// </param>
    Task Schedule<T>(ConsumeContext context, DateTimeOffset due, TimeSpan lane, T message, Func<bool>? obsolete = null) where T : class;
}

/// <summary>
/// In-process timers: firing sends the message through the broker so the saga handles it like any other event.
/// They die with the process; the adapter's own deadline fallback covers a router that dies. A timer the broker does
/// not take (connection lost, a cluster node going away) is set again a second later, for a minute at most, without
/// holding up the timers behind it: a forget that never arrives would keep the saga in memory and the call's CDR
/// without its claim count.
/// </summary>
public sealed class InProcessCallTimers : BackgroundService, ICallTimers
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);
    private const int MaxAttempts = 60;

    private readonly IServiceProvider _services;
    private readonly TimeProvider _clock;
    private readonly ILogger<InProcessCallTimers> _logger;
    private readonly DueQueue<Timer> _pending;
    private readonly Channel<Timer> _due =
        Channel.CreateUnbounded<Timer>(new UnboundedChannelOptions { SingleReader = true });

    // The bus is resolved when timers start, not here: the bus needs the state machine, which needs these timers.
    public InProcessCallTimers(IServiceProvider services, TimeProvider clock, ILogger<InProcessCallTimers> logger)
    {
        _services = services;
        _clock = clock;
        _logger = logger;
        _pending = new DueQueue<Timer>("call-timers", send => _due.Writer.TryWrite(send), clock);
    }

    public Task Schedule<T>(ConsumeContext context, DateTimeOffset due, TimeSpan lane, T message, Func<bool>? obsolete = null) where T : class
    {
        _pending.Add(due, new Timer(typeof(T).Name, endpoint => obsolete?.Invoke() == true
            ? Task.CompletedTask
            : endpoint.Send(message, s => Outbound.Stamp(s, typeof(T).Name, "", null), Outbound.SendDeadline())));
        return Task.CompletedTask;
    }

    /// <summary>One timer: what it sends, and how many times sending it failed so far.</summary>
    private sealed record Timer(string Kind, Func<ISendEndpoint, Task> Send, int Failures = 0);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var registration = stoppingToken.Register(() => _due.Writer.TryComplete());
        // Through the receive endpoint's own exchange: a "queue:" address would declare the queue again with no
        // arguments, which a quorum router queue (Broker__QueueType=quorum) refuses with PRECONDITION_FAILED.
        var endpoint = await _services.GetRequiredService<IBus>().GetSendEndpoint(new Uri($"exchange:{Topology.RouterQueue}?type=fanout"));
        await foreach (var timer in _due.Reader.ReadAllAsync(CancellationToken.None))
        {
            try
            {
                await timer.Send(endpoint);
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested || Stopping)
            {
                // Shutting down: remaining deadlines are the adapter's fallback's job.
            }
            catch (Exception exception) when (timer.Failures + 1 < MaxAttempts)
            {
                if (timer.Failures == 0)
                    _logger.LogWarning("A {Kind} timer was not taken by the broker ({Error}); trying again every {Delay} s", timer.Kind, exception.Message, RetryAfter.TotalSeconds);
                _pending.Add(_clock.GetUtcNow() + RetryAfter, timer with { Failures = timer.Failures + 1 });
            }
            catch (Exception exception)
            {
                _logger.LogError(exception, "A {Kind} timer could not be delivered in {Attempts} attempts; the adapter's own deadline fallback will end the call", timer.Kind, MaxAttempts);
            }
        }
    }

    /// <summary>The host is stopping: the bus may already be gone.</summary>
    private bool Stopping => _services.GetService<IHostApplicationLifetime>()?.ApplicationStopping.IsCancellationRequested == true;

    public override void Dispose()
    {
        _pending.Dispose();
        base.Dispose();
    }
}
