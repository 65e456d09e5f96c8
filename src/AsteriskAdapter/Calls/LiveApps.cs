using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// Apps that announced themselves with a heartbeat recently enough to be offered calls. After the adapter starts
/// hearing heartbeats (at start and after every broker reconnect) it does not yet know every live app: it learns them
/// for <see cref="AdapterOptions.AppWarmup"/> (by default one liveness timeout, within which every live app heartbeats),
/// see <see cref="Knows"/>.
/// </summary>
public sealed class LiveApps(IOptions<AdapterOptions> options, TimeProvider clock)
{
    /// <summary>An app silent this long is forgotten (it no longer shows in the live_apps gauge).</summary>
    public static readonly TimeSpan ForgetAfter = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastSeen = new(StringComparer.Ordinal);
    private readonly TimeSpan _timeout = options.Value.AppLivenessTimeout;
    private readonly TimeSpan _warmup = options.Value.AppWarmup ?? options.Value.AppLivenessTimeout;
    private DateTimeOffset? _knownFrom;
    private TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>True once heartbeats have been heard for a whole liveness window: an app not live now is really not live.</summary>
    public bool Knows => _knownFrom is { } from && clock.GetUtcNow() >= from;

    /// <summary>When <see cref="Knows"/> becomes true (null before heartbeats are consumed at all).</summary>
    public DateTimeOffset? KnownFrom => _knownFrom;

    /// <summary>Heartbeats are consumed from now on (again, after a broker reconnect): learn for one liveness window.</summary>
    public void StartLearning() => _knownFrom = clock.GetUtcNow() + _warmup;

    public void Seen(string app)
    {
        _lastSeen[app] = clock.GetUtcNow();
        Interlocked.Exchange(ref _seen, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>Waits until an app the filter matches is live, or until the adapter knows every live app.</summary>
    public async Task WaitForMatch(Regex? filter, CancellationToken cancellationToken)
    {
        while (!Knows && Matching(filter).Count == 0)
        {
            var seen = Volatile.Read(ref _seen).Task;
            var left = (_knownFrom ?? clock.GetUtcNow() + _warmup) - clock.GetUtcNow();
            if (left > TimeSpan.Zero)
                await Task.WhenAny(seen, Task.Delay(left, clock, cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    public void Gone(string app) => _lastSeen.TryRemove(app, out _);

    public bool IsLive(string app) => _lastSeen.TryGetValue(app, out var seen) && clock.GetUtcNow() - seen < _timeout;

    /// <summary>Every app heard from (until it said it was stopping), and whether it is live now.</summary>
    public IEnumerable<(string App, bool Live)> Snapshot()
    {
        var now = clock.GetUtcNow();
        foreach (var (app, seen) in _lastSeen)
        {
            if (now - seen >= ForgetAfter)
                _lastSeen.TryRemove(new KeyValuePair<string, DateTimeOffset>(app, seen));
            else
                yield return (app, now - seen < _timeout);
        }
    }

    /// <summary>Live apps whose name the filter matches (all live apps when there is no filter).</summary>
    public List<string> Matching(Regex? filter)
    {
        var now = clock.GetUtcNow();
        var result = new List<string>();
        foreach (var (app, seen) in _lastSeen)
        {
            if (now - seen >= _timeout)
            {
                if (now - seen >= ForgetAfter)
                    _lastSeen.TryRemove(new KeyValuePair<string, DateTimeOffset>(app, seen));
                continue;
            }
            if (filter is null || filter.IsMatch(app))
                result.Add(app);
        }
        return result;
    }
}
