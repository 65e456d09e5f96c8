using System.Collections.Concurrent;
using System.Globalization;

namespace CallRouter.AriSimulator;

/// <summary>State shared by the REST endpoints, the event sockets and the channels of one simulator.</summary>
internal sealed class SimulatorCore(AriSimulatorOptions options, CancellationToken stopping)
{
    private readonly ConcurrentDictionary<string, SimChannel> _live = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SimChannel> _all = new(StringComparer.Ordinal);
    private int _idSequence;
    private int _localSequence;

    public string AsteriskId { get; } = options.AsteriskId;

    /// <summary>See <see cref="AriSimulatorOptions.ArrayFunction"/>.</summary>
    public bool ArrayFunction { get; } = options.ArrayFunction;

    public EventSockets Sockets { get; } = new();

    public AppSubscriptions Subscriptions { get; } = new();

    public IReadOnlyCollection<SimChannel> AllChannels => [.. _all.Values];

    public IEnumerable<SimChannel> LiveChannels => _live.Values;

    public SimChannel? FindLive(string id) => _live.GetValueOrDefault(id);

    private SimControl? _control;

    /// <summary>Call control: created channels, dial, answer, playbacks, DTMF, bridges (ari-call-control.md).</summary>
    public SimControl Control => LazyInitializer.EnsureInitialized(ref _control, () => new SimControl(this, options));

    /// <summary>Registers a channel made by channels/create and runs it into <paramref name="app"/>.</summary>
    public bool TryAddCreated(SimChannel channel)
    {
        if (!_all.TryAdd(channel.Id, channel))
        {
            return false;
        }

        _live[channel.Id] = channel;
        return true;
    }

    public int NextLocalSequence() => Interlocked.Increment(ref _localSequence);

    public string NewChannelId() => NewId();

    /// <summary>Queues an already serialized event on each socket of <paramref name="app"/>.</summary>
    public void PublishFrame(string app, byte[] frame)
    {
        foreach (var socket in Sockets.ConnectionsOf(app))
        {
            socket.Enqueue(new OutFrame(frame, null));
        }
    }

    public SimChannel? Find(string id) => _all.GetValueOrDefault(id);

    public SimChannel Originate(string app, IReadOnlyList<string> stasisArgs, string extension,
        string callerNumber, string callerName, string? channelId)
    {
        var local = Interlocked.Increment(ref _localSequence);
        var name = string.Create(CultureInfo.InvariantCulture, $"Local/{extension}@{SimChannel.EntryContext}-{local:x8};2");
        SimChannel channel;
        while (true)
        {
            var id = channelId ?? NewId();
            channel = new SimChannel(this, id, name, app, [.. stasisArgs], extension, callerNumber, callerName);
            if (_all.TryAdd(id, channel))
            {
                break;
            }

            if (channelId is not null)
            {
                throw new InvalidOperationException($"Channel with given unique ID already exists: {channelId}");
            }
        }

        _live[channel.Id] = channel;
        channel.RunStasis(app);
        return channel;
    }

    /// <summary>Serializes the event for <paramref name="app"/> and queues it on each of its sockets.</summary>
    public void Publish(string app, AriEvent e)
    {
        var sockets = Sockets.ConnectionsOf(app);
        if (sockets.Length == 0)
        {
            return;
        }

        var frame = new OutFrame(AriJson.Event(e, app, AsteriskId), e.Type == "StasisStart" ? e.Channel : null);
        foreach (var socket in sockets)
        {
            socket.Enqueue(frame);
        }
    }

    /// <summary>Called when a channel left (or never entered) the Stasis app; schedules the optional auto hang-up.</summary>
    public void AfterHandover(SimChannel channel)
    {
        if (options.HangupAfterHandover is { } delay)
        {
            _ = HangupLaterAsync(channel, delay);
        }
    }

    public void Forget(SimChannel channel) => _live.TryRemove(channel.Id, out _);

    private async Task HangupLaterAsync(SimChannel channel, TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        channel.Hangup(16, soft: false, destroyCause: 16);
    }

    private string NewId() =>
        string.Create(CultureInfo.InvariantCulture,
            $"{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}.{Interlocked.Increment(ref _idSequence)}");
}

/// <summary>Which channels each application subscribed to (for the "channel_ids" of the application object).</summary>
internal sealed class AppSubscriptions
{
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, byte>> _byApp = new(StringComparer.Ordinal);

    public void Add(string app, string channelId) =>
        _byApp.GetOrAdd(app, _ => new ConcurrentDictionary<string, byte>(StringComparer.Ordinal))[channelId] = 0;

    public void Remove(string app, string channelId)
    {
        if (_byApp.TryGetValue(app, out var ids))
        {
            ids.TryRemove(channelId, out _);
        }
    }

    public IEnumerable<string> ChannelIds(string app) =>
        _byApp.TryGetValue(app, out var ids) ? ids.Keys : [];
}
