namespace CallRouter.AsteriskAdapter.Ari;

/// <summary>
/// The call lane's connections, one permit each. A free permit goes to a request that waits <i>first</i> (a broadcast
/// call's handover, a call a router or an app is waiting on) before any that waits <i>behind</i> (a call failed at once,
/// above all the calls shed under overload); each kind first come, first served. Past capacity the shed calls' requests
/// outnumber the routed calls' several times over, and one queue made every routed call wait behind them.
/// Hand-written: System.Threading.RateLimiting's limiters queue in one order only.
/// </summary>
public sealed class PriorityGate(int permits)
{
    private readonly Lock _lock = new();
    private readonly Queue<TaskCompletionSource> _first = new();
    private readonly Queue<TaskCompletionSource> _behind = new();
    private int _free = permits;

    /// <summary>Requests waiting for a permit: (first, behind). Cancelled waiters count until a release skips them.</summary>
    public (int First, int Behind) Waiting
    {
        get
        {
            lock (_lock)
                return (_first.Count, _behind.Count);
        }
    }

    /// <summary>A permit, released by disposing it; waits (in the queue of its kind) while none is free.</summary>
    public async ValueTask<IDisposable> Acquire(bool behind, CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter;
        lock (_lock)
        {
            if (_free > 0)
            {
                _free--;
                return new Permit(this);
            }
            waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            (behind ? _behind : _first).Enqueue(waiter);
        }
        // A waiter cancelled after a release handed it the permit keeps it (TrySetResult won): the caller goes on with it.
        await using (cancellationToken.Register(() => waiter.TrySetCanceled(cancellationToken)))
            await waiter.Task;
        return new Permit(this);
    }

    private void Release()
    {
        lock (_lock)
        {
            while (_first.TryDequeue(out var waiter) || _behind.TryDequeue(out waiter))
                if (waiter.TrySetResult())
                    return;
            _free++;
        }
    }

    private sealed class Permit(PriorityGate gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
                gate.Release();
        }
    }
}
