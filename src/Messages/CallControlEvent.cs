namespace CallRouter.Messages;

/// <summary>
/// One ARI event about a controlled call's channels, bridges or playbacks (adapter → the winning app). <paramref name="Event"/>
/// is ARI's event type, also the AMQP type; the other fields are set when the event has them.
/// </summary>
public sealed record CallControlEvent(
    Guid CallId,
    string Event,
    DateTimeOffset At,
    string? ChannelId = null,
    string? ChannelState = null,
    string? BridgeId = null,
    string? PlaybackId = null,
    string? PlaybackState = null,
    string? DialStatus = null,
    string? Digit = null,
    int? Cause = null,
    string? CauseText = null,
    string? Variable = null,
    string? Value = null)
{
    public string Type => Event;
}
