using CallRouter.Messages;
using MassTransit;

namespace CallRouter.Router.Observability;

/// <summary>Counts adapters' CallEnded reports once each, after the saga has taken them (a retried consume counts once).</summary>
public sealed class EndReportObserver(RouterMetrics metrics) : IConsumeObserver
{
    public Task PreConsume<T>(ConsumeContext<T> context) where T : class => Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context) where T : class
    {
        if (context.Message is CallEnded ended)
            metrics.EndReported(ended);
        return Task.CompletedTask;
    }

    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class => Task.CompletedTask;
}
