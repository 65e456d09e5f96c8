namespace CallRouter.AriSimulator;

/// <summary>Where a channel is in its life: InStasis(app) → InDialplan → Destroyed.</summary>
internal enum ChannelPhase
{
    InDialplan,
    InStasis,
    Destroyed,
}

/// <summary>The "dialplan" object of a channel as ARI shows it.</summary>
internal sealed record DialplanState(string Context, string Exten, int Priority, string AppName, string AppData);

/// <summary>
/// Immutable snapshot of a channel's mutable state. A transition swaps the whole record under the channel
/// lock, so readers (REST GET, public properties) never see a half-applied change and need no lock.
/// </summary>
internal sealed record ChannelFacts(ChannelPhase Phase, string? App, DialplanState Dialplan)
{
    public string? StasisStatus { get; init; }
    public DialplanLocation? ContinuedTo { get; init; }
    public string? MovedToApp { get; init; }
    public IReadOnlyList<string>? MovedArgs { get; init; }
    public int? HangupCause { get; init; }
    public long HandoverTimestamp { get; init; }

    /// <summary>ARI channel state: "Ring" for a caller in the dialplan, "Down" for a created channel, "Up" once answered.</summary>
    public string State { get; init; } = "Ring";
}
