namespace CallRouter.Common;

/// <summary>
/// Items that fall due at a wall-clock time, handed to a callback from one dedicated thread: precise to about a
/// millisecond and never queued behind other work on the thread pool. The callback must be quick.
/// </summary>
public sealed class DueQueue<T> : IDisposable
{
    private readonly PriorityQueue<T, long> _pending = new();
    private readonly object _gate = new();
    private readonly Action<T> _onDue;
    private readonly TimeProvider _clock;
    private bool _stopped;

    public DueQueue(string name, Action<T> onDue, TimeProvider? clock = null)
    {
        _onDue = onDue;
        _clock = clock ?? TimeProvider.System;
        new Thread(Run) { IsBackground = true, Name = name, Priority = ThreadPriority.AboveNormal }.Start();
    }

    public void Add(DateTimeOffset due, T item)
    {
        // Rounded up to the millisecond, so an item is never handed over before its due time (a callback that checks the
        // clock against it sees it due).
        var at = due.ToUnixTimeMilliseconds();
        if (due > DateTimeOffset.FromUnixTimeMilliseconds(at))
            at++;
        lock (_gate)
        {
            // The thread sleeps until the earliest item: wake it only when this one comes first. Items mostly arrive in due
            // order (one delay per queue), so most adds cost no thread switch.
            var first = !_pending.TryPeek(out _, out var earliest) || at < earliest;
            _pending.Enqueue(item, at);
            if (first)
                Monitor.Pulse(_gate);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopped = true;
            Monitor.Pulse(_gate);
        }
    }

    private void Run()
    {
        while (true)
        {
            T item;
            lock (_gate)
            {
                while (true)
                {
                    if (_stopped)
                        return;
                    if (_pending.TryPeek(out item!, out var due))
                    {
                        var wait = due - _clock.GetUtcNow().ToUnixTimeMilliseconds();
                        if (wait <= 0)
                        {
                            _pending.Dequeue();
                            break;
                        }
                        Monitor.Wait(_gate, (int)Math.Min(wait, 1000));
                    }
                    else
                    {
                        Monitor.Wait(_gate, 1000);
                    }
                }
            }
            _onDue(item);
        }
    }
}
