using System.Runtime.CompilerServices;
using CallRouter.Messages;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace CallRouter.Router.Transport;

/// <summary>
/// Sends a claim's answer or a decision again when the broker did not take it because the router's node went away (a
/// cluster node killed or cut off). The claim it answers may already be acked, so it would never be handled again: in
/// the node-kill test one claim in a few hundred handled at the kill was never answered (issue 13). Sent again through
/// the bus, which has moved to another node, with the same routing, correlation id and content; an app may so hear the
/// same answer twice (README: keep the first), and an adapter the same decision (it ignores a decision for a call it
/// has finished or is handing over).
/// </summary>
public sealed class UnconfirmedResender(IServiceProvider services, ILogger<UnconfirmedResender> logger) : ISendObserver
{
    /// <summary>How long a message is tried again: an app waits about 30 s for an answer in a cluster (README).</summary>
    public static readonly TimeSpan GiveUpAfter = TimeSpan.FromSeconds(30);

    // The messages being sent again, so the failure of a second send does not start a third chain.
    private readonly ConditionalWeakTable<object, object> _resending = [];

    // "unconfirmed-resend": every second, each attempt bounded by the send deadline, for GiveUpAfter in all.
    private readonly ResiliencePipeline _retry = new ResiliencePipelineBuilder { Name = "unconfirmed-resend" }
        .AddTimeout(GiveUpAfter)
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not Polly.Timeout.TimeoutRejectedException),
            MaxRetryAttempts = int.MaxValue,
            Delay = TimeSpan.FromSeconds(1),
            BackoffType = DelayBackoffType.Constant,
        })
        .Build();

    /// <summary>Messages sent again so far (for tests and logs).</summary>
    public long Resent => Interlocked.Read(ref _resent);

    private long _resent;

    public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class
    {
        if (context.Message is not (ClaimReply or ContinueCall) || !Outbound.ConnectionLost(exception) || Stopping
            || !context.TryGetPayload<RabbitMqSendContext>(out var amqp) || !_resending.TryAdd(context.Message, context.Message))
            return Task.CompletedTask;
        var (destination, message, type, routingKey, correlationId) =
            (context.DestinationAddress!, context.Message, amqp.BasicProperties.Type ?? typeof(T).Name, amqp.RoutingKey ?? "", amqp.BasicProperties.CorrelationId);
        _ = Task.Run(() => Resend(destination, message, type, routingKey, correlationId));
        return Task.CompletedTask;
    }

    private async Task Resend<T>(Uri destination, T message, string type, string routingKey, string? correlationId) where T : class
    {
        try
        {
            await _retry.ExecuteAsync(async token =>
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(token, Outbound.SendDeadline());
                var endpoint = await services.GetRequiredService<IBus>().GetSendEndpoint(destination);
                await endpoint.Send(message, send => Outbound.Stamp(send, type, routingKey, correlationId), deadline.Token);
            });
            Interlocked.Increment(ref _resent);
            logger.LogWarning("A {Type} the broker did not confirm (its node was lost) was sent again: {Message}", type, message);
        }
        catch (Exception exception)
        {
            logger.LogError(exception, "A {Type} the broker did not confirm could not be sent again within {Seconds} s: {Message}",
                type, GiveUpAfter.TotalSeconds, message);
        }
        finally
        {
            _resending.Remove(message);
        }
    }

    /// <summary>The host is stopping: the bus is going away, and failures are expected.</summary>
    private bool Stopping => services.GetService<IHostApplicationLifetime>()?.ApplicationStopping.IsCancellationRequested == true;

    public Task PreSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;

    public Task PostSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;
}
