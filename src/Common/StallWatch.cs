namespace CallRouter.Common;

/// <summary>
/// Sends on an open RabbitMQ connection that go unconfirmed (RabbitMQ 3.x after a partition, rabbitmq-server#14589): the
/// first late send starts a stall, and <paramref name="act"/> (a new connection) runs <paramref name="holdOff"/> later
/// unless no send was late in the <paramref name="quiet"/> before. Late sends within <paramref name="quiet"/> after an act
/// were in flight on the old connection, and start nothing. The router's StalledConnectionBreaker and the adapter's
/// publishing connection use it.
/// </summary>
public sealed class StallWatch(TimeSpan holdOff, TimeSpan quiet, Func<Task> act)
{
    private long _lastAct = long.MinValue / 2;
    private long _lastLate;
    private int _stalled; // 1 from a stall's first late send until it was acted on or cleared

    /// <summary>A send ran late; true when it started a stall.</summary>
    public bool Late()
    {
        var now = Environment.TickCount64;
        Interlocked.Exchange(ref _lastLate, now);
        if (now - Interlocked.Read(ref _lastAct) < quiet.TotalMilliseconds || Interlocked.Exchange(ref _stalled, 1) == 1)
            return false;
        _ = Task.Run(ActIfStillStalled);
        return true;
    }

    // Acting whatever happened meanwhile was tried in the router: decisions stopped 33-35 s in 2 partition runs of 2 (a
    // connection that had come right was closed); with this check, 14.9-28.7 s in 6 of 6.
    private async Task ActIfStillStalled()
    {
        try
        {
            await Task.Delay(holdOff);
            var now = Environment.TickCount64;
            if (now - Interlocked.Read(ref _lastLate) > quiet.TotalMilliseconds)
                return; // no late send for a while: the stall cleared by itself
            Interlocked.Exchange(ref _lastAct, now);
            await act();
        }
        finally
        {
            Interlocked.Exchange(ref _stalled, 0);
        }
    }
}
