using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>Apps that announced themselves with a heartbeat recently enough to be offered calls.</summary>
public sealed class LiveApps(IOptions<AdapterOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastSeen = new(StringComparer.Ordinal);
    private readonly TimeSpan _timeout = options.Value.AppLivenessTimeout;

    public void Seen(string app) => _lastSeen[app] = clock.GetUtcNow();

    public void Gone(string app) => _lastSeen.TryRemove(app, out _);

    public bool IsLive(string app) => _lastSeen.TryGetValue(app, out var seen) && clock.GetUtcNow() - seen < _timeout;

    /// <summary>Every app heard from (until it said it was stopping), and whether it is live now.</summary>
    public IEnumerable<(string App, bool Live)> Snapshot()
    {
        var now = clock.GetUtcNow();
        foreach (var (app, seen) in _lastSeen)
            yield return (app, now - seen < _timeout);
    }

    /// <summary>Live apps whose name the filter matches (all live apps when there is no filter).</summary>
    public List<string> Matching(Regex? filter)
    {
        var now = clock.GetUtcNow();
        var result = new List<string>();
        foreach (var (app, seen) in _lastSeen)
        {
            if (now - seen >= _timeout)
                continue;
            if (filter is null || filter.IsMatch(app))
                result.Add(app);
        }
        return result;
    }
}
