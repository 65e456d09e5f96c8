using System.Collections.Concurrent;
using CallRouter.Messages;

namespace CallRouter.Router.Saga;

/// <summary>
/// Puts each broadcast's deadline on this router's clock. An adapter stamps BroadcastAt and Deadline on its own clock,
/// which may be off by any amount; the smallest (receipt here − BroadcastAt) seen lately from that adapter is the clock
/// offset plus the quickest delivery, and one broadcast's excess over it is how late that broadcast came. So the
/// deadline is Deadline + that smallest offset: timeoutMs after the adapter broadcast, measured here, whatever the
/// clocks say, and shortened by a delivery that lagged (the adapter's fallback does not wait for a late router).
/// </summary>
public sealed class AdapterClocks(TimeProvider clock)
{
    /// <summary>How long an offset sample counts (a clock stepped forward is learnt within two windows).</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    /// <summary>Adapters remembered at most; beyond that a broadcast's deadline is simply timeoutMs from its receipt.</summary>
    public const int MaxNodes = 1024;

    private readonly ConcurrentDictionary<string, Offsets> _nodes = new(StringComparer.Ordinal);

    public DateTimeOffset DeadlineOf(CallBroadcast broadcast, DateTimeOffset receivedAt)
    {
        var offset = receivedAt - broadcast.BroadcastAt;
        var node = _nodes.TryGetValue(broadcast.Node, out var known) ? known
            : _nodes.Count < MaxNodes ? _nodes.GetOrAdd(broadcast.Node, _ => new Offsets())
            : null;
        return broadcast.Deadline + (node?.Observe(offset, clock.GetUtcNow()) ?? offset);
    }

    /// <summary>The least offset in the current and the previous window.</summary>
    private sealed class Offsets
    {
        private DateTimeOffset _windowStart = DateTimeOffset.MinValue;
        private TimeSpan _current = TimeSpan.MaxValue;
        private TimeSpan _previous = TimeSpan.MaxValue;

        public TimeSpan Observe(TimeSpan offset, DateTimeOffset now)
        {
            lock (this)
            {
                if (now - _windowStart > Window || now < _windowStart)
                    (_windowStart, _previous, _current) = (now, _current, TimeSpan.MaxValue);
                if (offset < _current)
                    _current = offset;
                return _current < _previous ? _current : _previous;
            }
        }
    }
}
