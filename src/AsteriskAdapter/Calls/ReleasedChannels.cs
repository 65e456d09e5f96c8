using System.Collections.Concurrent;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// The channels this run stopped tracking (handed over, failed at once, or its controlled call ended) while a reconnect's
/// recovery runs. Recovery lists the app's channels, then checks each against what the run tracks: a channel released in
/// between is still in the list but tracked no more, and must not be taken for one an earlier run left behind.
/// </summary>
public sealed class ReleasedChannels
{
    private volatile ConcurrentDictionary<string, bool>? _watched;

    /// <summary>Called before a channel leaves the book, the failing set or its control session (a no-op unless watched).</summary>
    public void Note(string channelId) => _watched?.TryAdd(channelId, true);

    /// <summary>Starts recording released channels; take it before listing the channels, dispose of it when the check is done.</summary>
    public Watch Start()
    {
        var watch = new Watch(this);
        _watched = watch.Channels;
        return watch;
    }

    /// <summary>The channels released since <see cref="Start"/>.</summary>
    public sealed class Watch(ReleasedChannels owner) : IDisposable
    {
        internal ConcurrentDictionary<string, bool> Channels { get; } = new(StringComparer.Ordinal);

        public bool Contains(string channelId) => Channels.ContainsKey(channelId);

        public void Dispose() => Interlocked.CompareExchange(ref owner._watched, null, Channels);
    }
}
