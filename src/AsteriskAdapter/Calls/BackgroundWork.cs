using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>Work started off the event loop: every task is tracked, its failure logged, and all are awaited at shutdown.</summary>
public sealed class BackgroundWork(ILogger<BackgroundWork> logger)
{
    private readonly ConcurrentDictionary<Task, bool> _running = new();

    public void Run(Func<Task> work, string what)
    {
        var task = Task.Run(async () =>
        {
            try
            {
                await work();
            }
            catch (Exception exception)
            {
                logger.LogError(exception, "Failed: {Work}", what);
            }
        });
        _running[task] = true;
        task.ContinueWith(t => _running.TryRemove(t, out _), TaskScheduler.Default);
    }

    public Task Drain() => Task.WhenAll(_running.Keys);
}
