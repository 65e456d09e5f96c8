using CallRouter.AsteriskAdapter.Ari;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary>
/// The call lane's connections: a freed one goes to a request waiting first (a broadcast call's handover) before any
/// waiting behind (a call failed at once), each kind in arrival order; a cancelled waiter is skipped, never handed one.
/// </summary>
public sealed class PriorityGateTests
{
    [Fact]
    public async Task A_freed_permit_goes_to_the_first_waiters_in_order_then_to_those_behind_in_order()
    {
        var gate = new PriorityGate(1);
        var held = await gate.Acquire(behind: false, CancellationToken.None);
        var order = new List<string>();
        Task Wait(string name, bool behind) => Task.Run(async () =>
        {
            var permit = await gate.Acquire(behind, CancellationToken.None);
            lock (order)
                order.Add(name);
            permit.Dispose();
        });
        // Queued one at a time, so arrival order is known.
        var waits = new List<Task>();
        foreach (var (name, behind) in new[] { ("shed-1", true), ("shed-2", true), ("routed-1", false), ("shed-3", true), ("routed-2", false) })
        {
            var before = gate.Waiting;
            waits.Add(Wait(name, behind));
            await Eventually.True(() => gate.Waiting.First + gate.Waiting.Behind == before.First + before.Behind + 1, TimeSpan.FromSeconds(5), $"{name} never queued");
        }
        Assert.Equal((2, 3), gate.Waiting);

        held.Dispose();
        await Task.WhenAll(waits).WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(["routed-1", "routed-2", "shed-1", "shed-2", "shed-3"], order);
        Assert.Equal((0, 0), gate.Waiting);
        // The permit came back: one can be taken at once, and only one (the gate's size).
        var again = await gate.Acquire(behind: true, CancellationToken.None);
        Assert.False(gate.Acquire(behind: false, CancellationToken.None).IsCompleted);
        again.Dispose();
    }

    [Fact]
    public async Task A_cancelled_waiter_is_skipped_and_the_permit_goes_to_the_next()
    {
        var gate = new PriorityGate(1);
        var held = await gate.Acquire(behind: false, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var cancelled = gate.Acquire(behind: false, cancel.Token).AsTask();
        var next = gate.Acquire(behind: true, CancellationToken.None).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.False(next.IsCompleted);

        held.Dispose();
        var permit = await next.WaitAsync(TimeSpan.FromSeconds(5));
        // Released twice, counted once: the gate still has exactly one permit.
        permit.Dispose();
        permit.Dispose();
        var only = await gate.Acquire(behind: false, CancellationToken.None);
        Assert.False(gate.Acquire(behind: false, CancellationToken.None).IsCompleted);
        only.Dispose();
    }
}
