namespace CallRouter.Messages;

/// <summary>
/// One finished call, for the CDR table (adapter → the CDR writer, durable and persistent). Sent once the channel is
/// destroyed and the router's claim tally is in; the writer stores it once per call id, however often it is delivered.
/// Call control: Controlled, AnsweredAt and ControlEnding describe a controlled call; a channel the app created for it
/// has a record of its own (reason "created") whose ParentCallId is the call's id.
/// </summary>
public sealed record CallRecord(
    Guid CallId,
    string Node,
    string ChannelId,
    string ChannelName,
    string CallerNumber,
    string CallerName,
    string Extension,
    string Context,
    IReadOnlyList<string> Args,
    DateTimeOffset ChannelCreatedAt,
    DateTimeOffset BroadcastAt,
    DateTimeOffset? Deadline,
    IReadOnlyList<string> Audience,
    int? Claims,
    string? Winner,
    DateTimeOffset? ClaimedAt,
    DateTimeOffset? HandedOverAt,
    string Status,
    string Reason,
    string? Target,
    DateTimeOffset EndedAt,
    int? HangupCause,
    string? HangupCauseText,
    bool Controlled = false,
    DateTimeOffset? AnsweredAt = null,
    string? ControlEnding = null,
    Guid? ParentCallId = null)
{
    public string Type => Topology.Types.CallRecord;

    /// <summary>Broadcast → winning claim.</summary>
    public double? ClaimLatencyMs => ClaimedAt is { } at ? (at - BroadcastAt).TotalMilliseconds : null;

    /// <summary>Broadcast → the call handed over (continued or moved).</summary>
    public double? DecisionLatencyMs => HandedOverAt is { } at ? (at - BroadcastAt).TotalMilliseconds : null;

    /// <summary>Channel created → channel destroyed.</summary>
    public double DurationS => (EndedAt - ChannelCreatedAt).TotalSeconds;
}

/// <summary>How many claims a decided call received in all (router → the adapter owning the channel), inside <see cref="ClaimTallies"/>.</summary>
public sealed record ClaimTally(Guid CallId, string ChannelId, int Claims)
{
    public string Type => Topology.Types.ClaimTally;
}

/// <summary>
/// The tallies of the calls one router counted for one adapter over a few milliseconds, in one message (a tally on its own,
/// one message per call, cost a broker delivery per call; issue 12).
/// </summary>
public sealed record ClaimTallies(IReadOnlyList<ClaimTally> Tallies)
{
    public string Type => Topology.Types.ClaimTallies;
}
