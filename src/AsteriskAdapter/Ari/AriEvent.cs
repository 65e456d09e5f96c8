using System.Globalization;
using System.Text.Json;

namespace CallRouter.AsteriskAdapter.Ari;

/// <summary>The parts of an ARI event the adapter uses.</summary>
public sealed record AriEvent(string Type, DateTimeOffset Timestamp, AriChannel? Channel, IReadOnlyList<string> Args, string? AsteriskId, string? Destination,
    int? Cause = null, string? CauseText = null)
{
    /// <summary>Call control: the parts of bridge, playback, dial, DTMF and variable events (null when absent).</summary>
    public AriControlParts? Control { get; init; }

    public static AriEvent Parse(JsonElement root)
    {
        var args = root.TryGetProperty("args", out var a) && a.ValueKind == JsonValueKind.Array
            ? a.EnumerateArray().Select(x => x.ToString()).ToList()
            : [];
        return new AriEvent(
            Str(root, "type") ?? "",
            AriTime.Parse(Str(root, "timestamp")) ?? DateTimeOffset.UtcNow,
            root.TryGetProperty("channel", out var c) && c.ValueKind == JsonValueKind.Object ? AriChannel.Parse(c) : null,
            args,
            Str(root, "asterisk_id"),
            Str(root, "destination"),
            root.TryGetProperty("cause", out var cause) && cause.TryGetInt32(out var code) ? code : null,
            Str(root, "cause_txt"))
        {
            Control = AriControlParts.Parse(root),
        };
    }

    internal static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}

/// <summary>The call-control parts of an ARI event: bridge, playback, Dial's peer and status, a DTMF digit, a variable.</summary>
public sealed record AriControlParts(string? BridgeId, string? PlaybackId, string? PlaybackState, string? PeerId, string? PeerState, string? DialStatus,
    string? Digit, string? Variable, string? Value, string? ChannelState)
{
    public static AriControlParts? Parse(JsonElement root)
    {
        var bridge = Object(root, "bridge");
        var playback = Object(root, "playback");
        var peer = Object(root, "peer");
        var channel = Object(root, "channel");
        if (bridge is null && playback is null && peer is null && channel is null)
            return null;
        return new AriControlParts(
            bridge is { } b ? AriEvent.Str(b, "id") : null,
            playback is { } p ? AriEvent.Str(p, "id") : null,
            playback is { } ps ? AriEvent.Str(ps, "state") : null,
            peer is { } e ? AriEvent.Str(e, "id") : null,
            peer is { } es ? AriEvent.Str(es, "state") : null,
            AriEvent.Str(root, "dialstatus"),
            AriEvent.Str(root, "digit"),
            AriEvent.Str(root, "variable"),
            AriEvent.Str(root, "value"),
            channel is { } c ? AriEvent.Str(c, "state") : null);
    }

    private static JsonElement? Object(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Object ? v : null;
}

/// <summary>An ARI channel object.</summary>
public sealed record AriChannel(string Id, string Name, string CallerNumber, string CallerName, string Context, string Exten, string AppName, string AppData, DateTimeOffset CreatedAt)
{
    public static AriChannel Parse(JsonElement c)
    {
        var caller = c.TryGetProperty("caller", out var k) ? k : default;
        var dialplan = c.TryGetProperty("dialplan", out var d) ? d : default;
        return new AriChannel(
            AriEvent.Str(c, "id") ?? "",
            AriEvent.Str(c, "name") ?? "",
            caller.ValueKind == JsonValueKind.Object ? AriEvent.Str(caller, "number") ?? "" : "",
            caller.ValueKind == JsonValueKind.Object ? AriEvent.Str(caller, "name") ?? "" : "",
            dialplan.ValueKind == JsonValueKind.Object ? AriEvent.Str(dialplan, "context") ?? "" : "",
            dialplan.ValueKind == JsonValueKind.Object ? AriEvent.Str(dialplan, "exten") ?? "" : "",
            dialplan.ValueKind == JsonValueKind.Object ? AriEvent.Str(dialplan, "app_name") ?? "" : "",
            dialplan.ValueKind == JsonValueKind.Object ? AriEvent.Str(dialplan, "app_data") ?? "" : "",
            AriTime.Parse(AriEvent.Str(c, "creationtime")) ?? DateTimeOffset.UtcNow);
    }
}

/// <summary>ARI timestamps carry an offset without a colon ("+0000"), which the default parser rejects.</summary>
public static class AriTime
{
    public static DateTimeOffset? Parse(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return null;
        if (text.Length > 5 && (text[^5] == '+' || text[^5] == '-') && char.IsDigit(text[^1]))
            text = string.Concat(text.AsSpan(0, text.Length - 2), ":", text.AsSpan(text.Length - 2));
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var value) ? value : null;
    }
}
