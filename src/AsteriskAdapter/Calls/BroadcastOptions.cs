using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// What the dialplan asked for, from Stasis(call-router,ARGS...). Either key=value in any order
/// (timeout=1500,filter=^sales,args=vip:gold,notify=yes) or StasisBroadcast's positional order
/// (1500,^sales,vip:gold,yes). Empty values take the defaults.
/// </summary>
public sealed record BroadcastOptions(int TimeoutMs, string? Filter, IReadOnlyList<string> Args, bool NotifyClaimed)
{
    public const int MaxTimeoutMs = 60_000;
    private static readonly string[] Positional = ["timeout", "filter", "args", "notify"];

    /// <summary>The options, or why they cannot be used.</summary>
    public static (BroadcastOptions? Options, string? Error) Parse(IReadOnlyList<string> stasisArgs, int defaultTimeoutMs)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < stasisArgs.Count; i++)
        {
            var arg = stasisArgs[i];
            var equals = arg.IndexOf('=');
            var isKeyed = equals > 0 && Positional.Contains(arg[..equals].Trim(), StringComparer.OrdinalIgnoreCase);
            if (isKeyed)
                values[arg[..equals].Trim()] = arg[(equals + 1)..];
            else if (i < Positional.Length)
                values[Positional[i]] = arg;
            else
                return (null, $"argument {i + 1} '{arg}' is not one of timeout=, filter=, args=, notify=");
        }

        var timeout = defaultTimeoutMs;
        if (values.TryGetValue("timeout", out var t) && t.Trim().Length > 0)
        {
            if (!int.TryParse(t.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out timeout) || timeout > MaxTimeoutMs)
                return (null, $"timeout '{t}' must be a whole number of milliseconds from 0 to {MaxTimeoutMs}");
            if (timeout == 0)
                timeout = defaultTimeoutMs;
        }

        var notify = false;
        if (values.TryGetValue("notify", out var n) && n.Trim().Length > 0)
        {
            switch (n.Trim().ToLowerInvariant())
            {
                case "yes" or "true" or "1" or "on": notify = true; break;
                case "no" or "false" or "0" or "off": notify = false; break;
                default: return (null, $"notify '{n}' must be yes or no");
            }
        }

        var filter = values.TryGetValue("filter", out var f) && f.Length > 0 ? f : null;
        var args = values.TryGetValue("args", out var a) && a.Length > 0 ? a.Split(':') : [];
        return (new BroadcastOptions(timeout, filter, args, notify), null);
    }
}

/// <summary>
/// App filters, compiled once and evaluated in linear time (NonBacktracking), so no pattern can stall the adapter.
/// Matching is unanchored, like StasisBroadcast's regexec: use ^ and $ to match whole names.
/// </summary>
public sealed class AppFilters
{
    private const int MaxCached = 1024;
    private const int MaxPatternLength = 512;
    private readonly ConcurrentDictionary<string, (Regex? Regex, string? Error)> _cache = new();

    public (Regex? Regex, string? Error) Compile(string pattern)
    {
        if (_cache.TryGetValue(pattern, out var cached))
            return cached;
        var compiled = Build(pattern);
        if (_cache.Count < MaxCached)
            _cache[pattern] = compiled;
        return compiled;
    }

    private static (Regex?, string?) Build(string pattern)
    {
        if (pattern.Length > MaxPatternLength)
            return (null, $"filter is longer than {MaxPatternLength} characters");
        try
        {
            return (new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100)), null);
        }
        catch (ArgumentException exception)
        {
            return (null, $"filter '{pattern}' is not a valid pattern: {exception.Message}");
        }
        catch (NotSupportedException exception)
        {
            return (null, $"filter '{pattern}' uses a construct linear-time matching cannot run: {exception.Message}");
        }
    }
}
