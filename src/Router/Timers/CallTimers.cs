using System.Threading.Channels;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Router.Transport;
using MassTransit;
using MassTransit.Mediator;
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

    /// <summary>Where the saga sends while it handles one of these timers' messages: by default its consume context.</summary>
    ISendEndpointProvider SendsFor(ConsumeContext timerContext) => timerContext;
}

/// <summary>
/// In-process timers (one router, sagas in this process): a timer that falls due goes to the saga through MassTransit's
/// mediator, which runs the same state machine on the same in-memory repository (and its per-call lock) without a round
/// trip through the broker; what the saga sends meanwhile goes out through the bus (<see cref="SendsFor"/>). They die
/// with the process; the adapter's own deadline fallback covers a router that dies. A timer whose handling fails (the
/// broker away while the saga sends a decision or a tally) is tried again a second later, for a minute at most, without
/// holding up the timers behind it: a forget that never arrives would keep the saga in memory and the call's CDR
/// without its claim count.
/// </summary>
public sealed class InProcessCallTimers : BackgroundService, ICallTimers
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);
    private const int MaxAttempts = 60;
    private const int Concurrency = 64;

    private readonly IServiceProvider _services;
    private readonly TimeProvider _clock;
    private readonly ILogger<InProcessCallTimers> _logger;
    private readonly DueQueue<Timer> _pending;
    private readonly Channel<Timer> _due =
        Channel.CreateUnbounded<Timer>(new UnboundedChannelOptions { SingleReader = true });
    private IBus? _bus;

    // The bus and the mediator are resolved when timers start, not here: they need the state machine, which needs these timers.
    public InProcessCallTimers(IServiceProvider services, TimeProvider clock, ILogger<InProcessCallTimers> logger)
    {
        _services = services;
        _clock = clock;
        _logger = logger;
        _pending = new DueQueue<Timer>("call-timers", send => _due.Writer.TryWrite(send), clock);
    }

    public Task Schedule<T>(ConsumeContext context, DateTimeOffset due, TimeSpan lane, T message, Func<bool>? obsolete = null) where T : class
    {
        _pending.Add(due, new Timer(typeof(T).Name, mediator => obsolete?.Invoke() == true
            ? Task.CompletedTask
            : mediator.Send(message)));
        return Task.CompletedTask;
    }

    /// <summary>The bus: a timer's message arrives through the mediator, whose own send endpoints do not reach the broker.</summary>
    public ISendEndpointProvider SendsFor(ConsumeContext timerContext) =>
        _bus ??= _services.GetRequiredService<IBus>();

    /// <summary>One timer: what it sends, and how many times sending it failed so far.</summary>
    private sealed record Timer(string Kind, Func<IMediator, Task> Send, int Failures = 0);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var registration = stoppingToken.Register(() => _due.Writer.TryComplete());
        var mediator = _services.GetRequiredService<IMediator>();
        _bus ??= _services.GetRequiredService<IBus>();
        // Timers of different calls are handled side by side (those of one call still one at a time: the repository locks
        // per call), so one slow send does not hold up every deadline behind it.
        var slots = new SemaphoreSlim(Concurrency);
        await foreach (var timer in _due.Reader.ReadAllAsync(CancellationToken.None))
        {
            await slots.WaitAsync(CancellationToken.None);
            _ = Fire(timer, mediator, slots, stoppingToken);
        }
    }

    private async Task Fire(Timer timer, IMediator mediator, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        try
        {
            await timer.Send(mediator);
        }
        catch (Exception) when (stoppingToken.IsCancellationRequested || Stopping)
        {
            // Shutting down: remaining deadlines are the adapter's fallback's job.
        }
        catch (Exception exception) when (timer.Failures + 1 < MaxAttempts)
        {
            if (timer.Failures == 0)
                _logger.LogWarning("A {Kind} timer failed ({Error}); trying again every {Delay} s", timer.Kind, exception.Message, RetryAfter.TotalSeconds);
            _pending.Add(_clock.GetUtcNow() + RetryAfter, timer with { Failures = timer.Failures + 1 });
        }
        catch (Exception exception)
        {
            _logger.LogError(exception, "A {Kind} timer could not be handled in {Attempts} attempts; the adapter's own deadline fallback will end the call", timer.Kind, MaxAttempts);
        }
        finally
        {
            slots.Release();
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
