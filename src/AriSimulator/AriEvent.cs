namespace CallRouter.AriSimulator;

/// <summary>One ARI event about a channel, before it is serialized for a particular application.</summary>
internal sealed class AriEvent
{
    private AriEvent(string type, SimChannel channel, ChannelFacts facts)
    {
        Type = type;
        Channel = channel;
        Facts = facts;
    }

    public string Type { get; }
    public string Timestamp { get; } = AriTime.Now();
    public SimChannel Channel { get; }
    public ChannelFacts Facts { get; }
    public IReadOnlyList<string>? Args { get; private init; }
    public string? Variable { get; private init; }
    public string? Value { get; private init; }
    public string? Destination { get; private init; }
    public int Cause { get; private init; }
    public bool Soft { get; private init; }

    public static AriEvent StasisStart(SimChannel ch, ChannelFacts f, IReadOnlyList<string> args) =>
        new("StasisStart", ch, f) { Args = args };

    public static AriEvent StasisEnd(SimChannel ch, ChannelFacts f) => new("StasisEnd", ch, f);

    public static AriEvent ChannelStateChange(SimChannel ch, ChannelFacts f) => new("ChannelStateChange", ch, f);

    public static AriEvent ChannelVarset(SimChannel ch, ChannelFacts f, string variable, string value) =>
        new("ChannelVarset", ch, f) { Variable = variable, Value = value };

    public static AriEvent ChannelHangupRequest(SimChannel ch, ChannelFacts f, int cause, bool soft) =>
        new("ChannelHangupRequest", ch, f) { Cause = cause, Soft = soft };

    public static AriEvent ChannelDestroyed(SimChannel ch, ChannelFacts f, int cause) =>
        new("ChannelDestroyed", ch, f) { Cause = cause };

    public static AriEvent ApplicationMoveFailed(SimChannel ch, ChannelFacts f, string destination, IReadOnlyList<string> args) =>
        new("ApplicationMoveFailed", ch, f) { Destination = destination, Args = args };
}
