namespace CallRouter.AriSimulator;

/// <summary>A simulated ARI mixing bridge. Guarded by <see cref="SimControl"/>'s lock.</summary>
public sealed class SimBridge
{
    internal SimBridge(string id, string name, string type)
    {
        Id = id;
        Name = name;
        Type = type;
    }

    public string Id { get; }

    public string Name { get; }

    /// <summary>bridge_type: "mixing" or "holding".</summary>
    public string Type { get; }

    internal string CreationTime { get; } = AriTime.Now();

    internal List<SimChannel> Members { get; } = [];

    /// <summary>Apps that had a channel in the bridge: they hear BridgeDestroyed.</summary>
    internal HashSet<string> Apps { get; } = new(StringComparer.Ordinal);

    /// <summary>Ids of the channels in the bridge now.</summary>
    public IReadOnlyList<string> ChannelIds { get; internal set; } = [];

    /// <summary>True once DELETE /bridges/{id} destroyed it.</summary>
    public bool Destroyed { get; internal set; }
}

/// <summary>A simulated playback on a channel or a bridge.</summary>
public sealed class SimPlayback
{
    internal SimPlayback(string id, string media, string target)
    {
        Id = id;
        Media = media;
        Target = target;
    }

    public string Id { get; }

    public string Media { get; }

    /// <summary>"channel:ID" or "bridge:ID".</summary>
    public string Target { get; }

    /// <summary>queued → playing → done or failed.</summary>
    public string State { get; internal set; } = "queued";

    internal HashSet<string> Apps { get; } = new(StringComparer.Ordinal);
}
