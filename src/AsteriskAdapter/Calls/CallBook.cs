using System.Collections.Concurrent;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>A broadcast the adapter has sent and not yet ended. Exactly one ending wins: the router's word, the fallback or the hang-up.</summary>
public sealed class OpenCall(Guid callId, string channelId, BroadcastOptions options, DateTimeOffset broadcastAt, DateTimeOffset deadline)
{
    private int _finished;

    public Guid CallId { get; } = callId;
    public string ChannelId { get; } = channelId;
    public BroadcastOptions Options { get; } = options;
    public DateTimeOffset BroadcastAt { get; } = broadcastAt;
    public DateTimeOffset Deadline { get; } = deadline;

    /// <summary>The app the router's decision named (kept for a failed move's FAILED handover and CDR).</summary>
    public string? Winner { get; set; }

    /// <summary>ROUTER_CALL_ID is on the channel already (set early, off the call path): the handover leaves it out.</summary>
    public volatile bool CallIdMarked;

    /// <summary>The call id for the handover to set: none when it is on the channel already (one ARI request fewer).</summary>
    public Guid? CallIdToSet => CallIdMarked ? null : CallId;

    /// <summary>Set while a move to the winner's app waits for Asterisk to confirm it.</summary>
    public volatile bool Moving;

    /// <summary>True once the call has been ended by one of its endings.</summary>
    public bool IsFinished => Volatile.Read(ref _finished) == 1;

    /// <summary>True for the one caller that gets to end this call.</summary>
    public bool TryFinish() => Interlocked.Exchange(ref _finished, 1) == 0;
}

/// <summary>Open calls by call id and by channel id.</summary>
public sealed class CallBook(ReleasedChannels released)
{
    private readonly ConcurrentDictionary<Guid, OpenCall> _byId = new();
    private readonly ConcurrentDictionary<string, OpenCall> _byChannel = new(StringComparer.Ordinal);

    private int _count;

    /// <summary>Calls in the book: broadcast and not yet handed over (admission control reads it on every call).</summary>
    public int Count => Volatile.Read(ref _count);

    public void Add(OpenCall call)
    {
        if (_byId.TryAdd(call.CallId, call))
            Interlocked.Increment(ref _count);
        else
            _byId[call.CallId] = call;
        _byChannel[call.ChannelId] = call;
    }

    public bool TryGet(Guid callId, out OpenCall call) => _byId.TryGetValue(callId, out call!);

    public bool TryGetByChannel(string channelId, out OpenCall call) => _byChannel.TryGetValue(channelId, out call!);

    /// <summary>Every call in the book (walks it: for reconnects, not the call path).</summary>
    public IReadOnlyList<OpenCall> All() => [.. _byId.Values];

    /// <summary>Calls broadcast and not yet ended (walks the book: for scrapes, not the call path).</summary>
    public int CountOpen()
    {
        var open = 0;
        foreach (var (_, call) in _byId)
            if (!call.IsFinished)
                open++;
        return open;
    }

    public void Remove(OpenCall call)
    {
        released.Note(call.ChannelId);
        if (_byId.TryRemove(call.CallId, out _))
            Interlocked.Decrement(ref _count);
        _byChannel.TryRemove(new KeyValuePair<string, OpenCall>(call.ChannelId, call));
    }
}
