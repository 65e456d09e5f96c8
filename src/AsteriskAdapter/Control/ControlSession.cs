using System.Collections.Concurrent;
using CallRouter.AsteriskAdapter.Calls;

namespace CallRouter.AsteriskAdapter.Control;

/// <summary>One controlled call: the caller's channel, and the channels, bridges and playbacks the winning app made for it.</summary>
public sealed class ControlSession(Guid callId, string winner, string callerChannelId, IReadOnlyList<string> args, bool allEvents = false)
{
    private int _ended;

    public Guid CallId { get; } = callId;

    /// <summary>The app that won the call: only users owning it may command the session; its events go to it alone.</summary>
    public string Winner { get; } = winner;

    public string CallerChannelId { get; } = callerChannelId;

    public IReadOnlyList<string> Args { get; } = args;

    /// <summary>The winner asked for every ARI event of the call (claim's allEvents), noise included.</summary>
    public bool AllEvents { get; } = allEvents;

    /// <summary>Channels the app created (channels/create), still up as far as the adapter knows.</summary>
    public ConcurrentDictionary<string, byte> Channels { get; } = new(StringComparer.Ordinal);

    public ConcurrentDictionary<string, byte> Bridges { get; } = new(StringComparer.Ordinal);

    public ConcurrentDictionary<string, byte> Playbacks { get; } = new(StringComparer.Ordinal);

    public bool IsEnded => Volatile.Read(ref _ended) == 1;

    /// <summary>CallControlStarted has gone out: from then on noise is forwarded too (AllEvents), never before it.</summary>
    public volatile bool Started;

    /// <summary>Orders forwarding an event against ending the session, so CallControlEnded is the app's last event of the call.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>True for the one caller that gets to end the session.</summary>
    public bool TryEnd() => Interlocked.Exchange(ref _ended, 1) == 0;

    /// <summary>Set just before the app continues or hangs up the caller, so the caller's own events end the session that way.</summary>
    public volatile string? Leaving;

    public bool HasChannel(string channelId) => channelId == CallerChannelId || Channels.ContainsKey(channelId);
}

/// <summary>Controlled calls by call id, and every channel, bridge and playback id they hold; plus recently ended calls.</summary>
public sealed class ControlSessions(ReleasedChannels released, TimeProvider clock)
{
    private static readonly TimeSpan EndedMemory = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<Guid, ControlSession> _byCall = new();
    private readonly ConcurrentDictionary<string, ControlSession> _byResource = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, (string Reason, DateTimeOffset At)> _ended = new();

    public int Count => _byCall.Count;

    public IReadOnlyCollection<ControlSession> All => [.. _byCall.Values];

    public void Add(ControlSession session)
    {
        _byCall[session.CallId] = session;
        _byResource["channel:" + session.CallerChannelId] = session;
    }

    public bool TryGet(Guid callId, out ControlSession session) => _byCall.TryGetValue(callId, out session!);

    public ControlSession? ByChannel(string? id) => id is not null ? _byResource.GetValueOrDefault("channel:" + id) : null;

    public ControlSession? ByBridge(string? id) => id is not null ? _byResource.GetValueOrDefault("bridge:" + id) : null;

    public ControlSession? ByPlayback(string? id) => id is not null ? _byResource.GetValueOrDefault("playback:" + id) : null;

    public void AddChannel(ControlSession session, string id)
    {
        session.Channels[id] = 0;
        _byResource["channel:" + id] = session;
    }

    public void AddBridge(ControlSession session, string id)
    {
        session.Bridges[id] = 0;
        _byResource["bridge:" + id] = session;
    }

    public void AddPlayback(ControlSession session, string id)
    {
        session.Playbacks[id] = 0;
        _byResource["playback:" + id] = session;
    }

    public void RemoveChannel(ControlSession session, string id)
    {
        released.Note(id);
        session.Channels.TryRemove(id, out _);
        _byResource.TryRemove(new KeyValuePair<string, ControlSession>("channel:" + id, session));
    }

    public void RemoveBridge(ControlSession session, string id)
    {
        session.Bridges.TryRemove(id, out _);
        _byResource.TryRemove(new KeyValuePair<string, ControlSession>("bridge:" + id, session));
    }

    public void RemovePlayback(ControlSession session, string id)
    {
        session.Playbacks.TryRemove(id, out _);
        _byResource.TryRemove(new KeyValuePair<string, ControlSession>("playback:" + id, session));
    }

    /// <summary>Forgets a finished session and its ids; commands for it are answered not-in-call for a while.</summary>
    public void Remove(ControlSession session, string reason)
    {
        _byCall.TryRemove(session.CallId, out _);
        released.Note(session.CallerChannelId);
        foreach (var id in session.Channels.Keys)
            released.Note(id);
        var keys = new[] { "channel:" + session.CallerChannelId }
            .Concat(session.Channels.Keys.Select(id => "channel:" + id))
            .Concat(session.Bridges.Keys.Select(id => "bridge:" + id))
            .Concat(session.Playbacks.Keys.Select(id => "playback:" + id));
        foreach (var key in keys)
            _byResource.TryRemove(new KeyValuePair<string, ControlSession>(key, session));
        var now = clock.GetUtcNow();
        _ended[session.CallId] = (reason, now);
        if (_ended.Count > 10_000)
            foreach (var (id, ended) in _ended)
                if (now - ended.At > EndedMemory)
                    _ended.TryRemove(id, out _);
    }

    public string? EndedReason(Guid callId) => _ended.TryGetValue(callId, out var ended) ? ended.Reason : null;
}
