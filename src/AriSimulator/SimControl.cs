using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;

namespace CallRouter.AriSimulator;

/// <summary>What a call-control request answers: a status and a JSON body (null: no body).</summary>
internal readonly record struct Outcome(int Status, byte[]? Body)
{
    public static readonly Outcome NoContent = new(204, null);

    public static Outcome Message(int status, string message) => new(status, AriJson.Message(message));
}

/// <summary>
/// Call control as Asterisk 23 does it (ari-call-control.md): channels/create, dial, answer, playbacks, DTMF and mixing
/// bridges, with the recorded events and quirks. One lock orders bridge and dial events across channels.
/// </summary>
internal sealed partial class SimControl
{
    private readonly SimulatorCore _core;
    private readonly AriSimulatorOptions _options;
    private readonly Lock _gate = new();
    private readonly ConcurrentDictionary<string, SimBridge> _bridges = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SimPlayback> _playbacks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _dialStrings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _dialed = new(StringComparer.Ordinal);

    public SimControl(SimulatorCore core, AriSimulatorOptions options)
    {
        _core = core;
        _options = options;
        Routes = new ControlRoutes(this);
    }

    public ControlRoutes Routes { get; }

    public IReadOnlyCollection<SimBridge> LiveBridges => [.. _bridges.Values];

    public IReadOnlyCollection<SimPlayback> LivePlaybacks => [.. _playbacks.Values];

    private string AsteriskId => _core.AsteriskId;

    [GeneratedRegex("^Local/([^@/]+)@([^/]+)(/n)?$")]
    private static partial Regex LocalEndpoint();

    /// <summary>POST /channels/create: the ";1" half of a Local channel, put in the app at once but not dialed.</summary>
    public Outcome Create(string endpoint, string app, IReadOnlyList<string> appArgs, string? channelId)
    {
        if (app.Length == 0)
        {
            return new Outcome(400, HttpJson.MissingApp);
        }

        var match = LocalEndpoint().Match(endpoint);
        if (!match.Success)
        {
            return new Outcome(500, ControlJson.Error("Allocation failed")); // recorded: key "error", not "message"
        }

        var (exten, context) = (match.Groups[1].Value, match.Groups[2].Value);
        var name = string.Create(CultureInfo.InvariantCulture, $"Local/{exten}@{context}-{_core.NextLocalSequence():x8};1");
        var id = string.IsNullOrEmpty(channelId) ? _core.NewChannelId() : channelId;
        var channel = new SimChannel(_core, id, name, app, appArgs, exten, "", "", context, priority: 1, state: "Down");
        if (!_core.TryAddCreated(channel))
        {
            return Outcome.Message(409, "Channel with given unique ID already exists");
        }

        _dialStrings[id] = endpoint["Local/".Length..];
        var facts = channel.Facts;
        _core.PublishFrame(app, ControlJson.ChannelEvent("ChannelDialplan", channel, facts, app, AsteriskId, after: w =>
        {
            w.WriteString("dialplan_app", "Stasis");
            w.WriteString("dialplan_app_data", facts.Dialplan.AppData);
        }));
        _core.PublishFrame(app, ControlJson.ChannelEvent("ChannelVarset", channel, facts, app, AsteriskId, before: w =>
        {
            w.WriteString("variable", "STASISSTATUS");
            w.WriteString("value", "");
        }));
        channel.RunStasis(app);
        return new Outcome(200, AriJson.Channel(channel));
    }

    public Outcome Answer(string channelId)
    {
        if (Controllable(channelId, out var channel) is { } refused)
        {
            return refused;
        }

        channel.SetState("Up");
        return Outcome.NoContent;
    }

    /// <summary>POST /channels/{id}/dial: "busy" extensions answer BUSY; the others answer at once.</summary>
    public Outcome Dial(string channelId)
    {
        if (Controllable(channelId, out var channel) is { } refused)
        {
            return refused;
        }

        lock (_gate)
        {
            if (channel.State != "Down" || !_dialed.TryAdd(channelId, 0))
            {
                return Outcome.Message(409, "Channel is not in the 'Down' state");
            }

            var dialString = _dialStrings.GetValueOrDefault(channelId, channel.Extension);
            channel.Announce(app => ControlJson.Dial(channel, channel.Facts, "", dialString, app, AsteriskId));
            if (channel.Extension == "busy")
            {
                channel.Announce(app => ControlJson.Dial(channel, channel.Facts, "BUSY", "", app, AsteriskId));
                return Outcome.NoContent;
            }

            channel.SetState("Up");
            channel.Announce(app => ControlJson.Dial(channel, channel.Facts, "ANSWER", "", app, AsteriskId));

            // Recorded quirk: control frames cross the bridge, so the callee's answer sets the caller Up too.
            if (channel.BridgeId is { } bridgeId && _bridges.TryGetValue(bridgeId, out var bridge))
            {
                foreach (var other in bridge.Members.Where(m => m != channel))
                {
                    other.SetState("Up");
                }
            }
        }

        return Outcome.NoContent;
    }

    public Outcome SendDtmf(string channelId, string dtmf)
    {
        if (dtmf.Length == 0)
        {
            return Outcome.Message(400, "DTMF is required");
        }

        return Controllable(channelId, out _) ?? Outcome.NoContent;
    }

    /// <summary>The far end pressed a key.</summary>
    public void DtmfReceived(SimChannel channel, char digit) =>
        channel.Announce(app => ControlJson.ChannelEvent("ChannelDtmfReceived", channel, channel.Facts, app, AsteriskId, before: w =>
        {
            w.WriteString("digit", digit.ToString());
            w.WriteNumber("duration_ms", 100);
        }));

    /// <summary>POST /channels/{id}/play or /bridges/{id}/play: 201 queued, then PlaybackStarted; a missing sound fails (201 all the same).</summary>
    public Outcome Play(bool onBridge, string targetId, string media, string? playbackId)
    {
        if (media.Length == 0)
        {
            return Outcome.Message(400, "Missing parameter media");
        }

        SimPlayback playback;
        lock (_gate)
        {
            IEnumerable<string?> apps;
            if (onBridge)
            {
                if (!_bridges.TryGetValue(targetId, out var bridge))
                {
                    return Outcome.Message(404, "Bridge not found");
                }

                apps = bridge.Members.Select(m => m.App).Concat(bridge.Apps);
            }
            else
            {
                if (Controllable(targetId, out var channel) is { } refused)
                {
                    return refused;
                }

                apps = [channel.App];
            }

            playback = new SimPlayback(string.IsNullOrEmpty(playbackId) ? Guid.NewGuid().ToString() : playbackId, media,
                (onBridge ? "bridge:" : "channel:") + targetId);
            foreach (var app in apps.OfType<string>())
            {
                playback.Apps.Add(app);
            }

            if (!_playbacks.TryAdd(playback.Id, playback))
            {
                return Outcome.Message(409, "Playback with given id already exists");
            }
        }

        var queued = ControlJson.Playback(playback, "queued");
        _ = RunPlayback(playback);
        return new Outcome(201, queued);
    }

    private async Task RunPlayback(SimPlayback playback)
    {
        await Task.Yield();
        lock (_gate)
        {
            if (playback.State != "queued")
            {
                return;
            }

            playback.State = "playing";
            PublishPlayback("PlaybackStarted", playback, "playing");
            if (playback.Media.Contains("does-not-exist", StringComparison.Ordinal))
            {
                Finish(playback, "failed"); // recorded: accepted with 201, then PlaybackFinished state "failed"
                return;
            }
        }

        try
        {
            await Task.Delay(_options.PlaybackDuration).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        lock (_gate)
        {
            Finish(playback, "done");
        }
    }

    /// <summary>DELETE /playbacks/{id}: a finished playback answers 404.</summary>
    public Outcome StopPlayback(string playbackId)
    {
        lock (_gate)
        {
            return _playbacks.TryGetValue(playbackId, out var playback) && Finish(playback, "done")
                ? Outcome.NoContent
                : Outcome.Message(404, "Playback not found");
        }
    }

    private bool Finish(SimPlayback playback, string state)
    {
        if (playback.State is "done" or "failed")
        {
            return false;
        }

        var wasPlaying = playback.State == "playing";
        playback.State = state;
        _playbacks.TryRemove(playback.Id, out _);
        if (!wasPlaying)
        {
            PublishPlayback("PlaybackStarted", playback, "playing");
        }

        PublishPlayback("PlaybackFinished", playback, state);
        return true;
    }

    private void PublishPlayback(string type, SimPlayback playback, string state)
    {
        foreach (var app in playback.Apps)
        {
            _core.PublishFrame(app, ControlJson.PlaybackEvent(type, playback, state, app, AsteriskId));
        }
    }

    public Outcome CreateBridge(string type, string name, string? bridgeId)
    {
        var bridge = new SimBridge(string.IsNullOrEmpty(bridgeId) ? Guid.NewGuid().ToString() : bridgeId, name,
            string.IsNullOrEmpty(type) ? "mixing" : type.Split(',')[0]);
        return _bridges.TryAdd(bridge.Id, bridge)
            ? new Outcome(200, ControlJson.Bridge(bridge))
            : Outcome.Message(409, "Bridge with id already exists");
    }

    public Outcome GetBridge(string bridgeId) =>
        _bridges.TryGetValue(bridgeId, out var bridge) ? new Outcome(200, ControlJson.Bridge(bridge)) : Outcome.Message(404, "Bridge not found");

    public Outcome ListBridges() => new(200, ControlJson.Bridges(_bridges.Values));

    /// <summary>DELETE /bridges/{id}: its channels leave it, then BridgeDestroyed.</summary>
    public Outcome DestroyBridge(string bridgeId)
    {
        lock (_gate)
        {
            if (!_bridges.TryRemove(bridgeId, out var bridge))
            {
                return Outcome.Message(404, "Bridge not found");
            }

            foreach (var member in bridge.Members.ToArray())
            {
                Leave(bridge, member);
            }

            bridge.Destroyed = true;
            foreach (var app in bridge.Apps)
            {
                _core.PublishFrame(app, ControlJson.BridgeEvent("BridgeDestroyed", bridge, null, null, app, AsteriskId));
            }

            return Outcome.NoContent;
        }
    }

    public Outcome AddChannels(string bridgeId, string channelList)
    {
        var ids = channelList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (ids.Length == 0)
        {
            return Outcome.Message(400, "Missing parameter channel");
        }

        lock (_gate)
        {
            if (!_bridges.TryGetValue(bridgeId, out var bridge))
            {
                return Outcome.Message(404, "Bridge not found");
            }

            var channels = new List<SimChannel>();
            foreach (var id in ids)
            {
                if (_core.FindLive(id) is not { } channel)
                {
                    return Outcome.Message(400, "Channel not found");
                }

                if (channel.CheckControllable() != ChannelOpResult.Ok)
                {
                    return Outcome.Message(422, "Channel not in Stasis application");
                }

                if (channel.BridgeId is { } other && other != bridgeId)
                {
                    return Outcome.Message(409, "Channel is already in another bridge");
                }

                channels.Add(channel);
            }

            foreach (var channel in channels.Where(c => c.BridgeId is null))
            {
                bridge.Members.Add(channel);
                bridge.ChannelIds = [.. bridge.Members.Select(m => m.Id)];
                channel.BridgeId = bridge.Id;
                if (channel.App is { } app)
                {
                    bridge.Apps.Add(app);
                }

                channel.Announce(app => ControlJson.BridgeEvent("ChannelEnteredBridge", bridge, channel, channel.Facts, app, AsteriskId));
            }

            if (bridge.Members.Count >= 2)
            {
                foreach (var member in bridge.Members)
                {
                    var peers = string.Join(',', bridge.Members.Where(m => m != member).Select(m => m.Name));
                    member.Announce(app => Varset(member, "BRIDGEPEER", peers, app));
                }
            }

            return Outcome.NoContent;
        }
    }

    public Outcome RemoveChannel(string bridgeId, string channelId)
    {
        if (channelId.Length == 0)
        {
            return Outcome.Message(400, "Missing parameter channel");
        }

        lock (_gate)
        {
            if (!_bridges.TryGetValue(bridgeId, out var bridge))
            {
                return Outcome.Message(404, "Bridge not found");
            }

            if (_core.FindLive(channelId) is not { } channel)
            {
                return Outcome.Message(400, "Channel not found");
            }

            if (!bridge.Members.Contains(channel))
            {
                return Outcome.Message(422, "Channel not in this bridge");
            }

            Leave(bridge, channel);
            return Outcome.NoContent;
        }
    }

    /// <summary>Before a channel hangs up or continues: it leaves its bridge (recorded: BRIDGEPEER cleared, ChannelLeftBridge).</summary>
    public void LeaveBridge(SimChannel channel)
    {
        if (channel.BridgeId is null)
        {
            return;
        }

        lock (_gate)
        {
            if (channel.BridgeId is { } id && _bridges.TryGetValue(id, out var bridge))
            {
                Leave(bridge, channel);
            }
        }
    }

    private void Leave(SimBridge bridge, SimChannel channel)
    {
        bridge.Members.Remove(channel);
        bridge.ChannelIds = [.. bridge.Members.Select(m => m.Id)];
        channel.BridgeId = null;
        channel.Announce(app => Varset(channel, "BRIDGEPEER", "", app));
        channel.Announce(app => ControlJson.BridgeEvent("ChannelLeftBridge", bridge, channel, channel.Facts, app, AsteriskId));
    }

    private byte[] Varset(SimChannel channel, string variable, string value, string app) =>
        ControlJson.ChannelEvent("ChannelVarset", channel, channel.Facts, app, AsteriskId, before: w =>
        {
            w.WriteString("variable", variable);
            w.WriteString("value", value);
        });

    private Outcome? Controllable(string channelId, out SimChannel channel)
    {
        channel = _core.FindLive(channelId)!;
        if (channel is null)
        {
            return new Outcome(404, HttpJson.ChannelNotFound);
        }

        return channel.CheckControllable() switch
        {
            ChannelOpResult.Ok => null,
            ChannelOpResult.NotInStasis => new Outcome(409, HttpJson.NotInStasis),
            _ => new Outcome(404, HttpJson.ChannelNotFound),
        };
    }
}
