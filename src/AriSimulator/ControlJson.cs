using System.Text.Json;

namespace CallRouter.AriSimulator;

/// <summary>Bridge, playback and call-control event bodies, in the field order of the recording (ari-call-control.md).</summary>
internal static class ControlJson
{
    public static byte[] Error(string error) => AriJson.Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("error", error);
        w.WriteEndObject();
    });

    public static byte[] Bridge(SimBridge bridge) => AriJson.Write(w => WriteBridge(w, bridge));

    public static byte[] Bridges(IEnumerable<SimBridge> bridges) => AriJson.Write(w =>
    {
        w.WriteStartArray();
        foreach (var bridge in bridges)
        {
            WriteBridge(w, bridge);
        }

        w.WriteEndArray();
    });

    public static byte[] Playback(SimPlayback playback, string state) => AriJson.Write(w => WritePlayback(w, playback, state));

    public static byte[] ChannelEvent(string type, SimChannel ch, ChannelFacts f, string app, string asteriskId, Action<Utf8JsonWriter>? before = null, Action<Utf8JsonWriter>? after = null) =>
        AriJson.Write(w =>
        {
            w.WriteStartObject();
            before?.Invoke(w);
            w.WriteString("type", type);
            w.WriteString("timestamp", AriTime.Now());
            after?.Invoke(w);
            w.WritePropertyName("channel");
            AriJson.WriteChannel(w, ch, f);
            Tail(w, app, asteriskId);
        });

    public static byte[] BridgeEvent(string type, SimBridge bridge, SimChannel? ch, ChannelFacts? f, string app, string asteriskId) =>
        AriJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("type", type);
            w.WriteString("timestamp", AriTime.Now());
            w.WritePropertyName("bridge");
            WriteBridge(w, bridge);
            if (ch is not null)
            {
                w.WritePropertyName("channel");
                AriJson.WriteChannel(w, ch, f!);
            }

            Tail(w, app, asteriskId);
        });

    public static byte[] Dial(SimChannel peer, ChannelFacts f, string dialStatus, string dialString, string app, string asteriskId) =>
        AriJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("type", "Dial");
            w.WriteString("timestamp", AriTime.Now());
            w.WriteString("dialstatus", dialStatus);
            w.WriteString("forward", "");
            w.WriteString("dialstring", dialString);
            w.WritePropertyName("peer");
            AriJson.WriteChannel(w, peer, f);
            Tail(w, app, asteriskId);
        });

    public static byte[] PlaybackEvent(string type, SimPlayback playback, string state, string app, string asteriskId) =>
        AriJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("type", type);
            w.WriteString("timestamp", AriTime.Now());
            w.WritePropertyName("playback");
            WritePlayback(w, playback, state);
            Tail(w, app, asteriskId);
        });

    private static void Tail(Utf8JsonWriter w, string app, string asteriskId)
    {
        w.WriteString("asterisk_id", asteriskId);
        w.WriteString("application", app);
        w.WriteEndObject();
    }

    private static void WriteBridge(Utf8JsonWriter w, SimBridge bridge)
    {
        w.WriteStartObject();
        w.WriteString("id", bridge.Id);
        w.WriteString("technology", "simple_bridge");
        w.WriteString("bridge_type", bridge.Type);
        w.WriteString("bridge_class", "stasis");
        w.WriteString("creator", "Stasis");
        w.WriteString("name", bridge.Name);
        AriJson.WriteStrings(w, "channels", bridge.ChannelIds);
        w.WriteString("creationtime", bridge.CreationTime);
        w.WriteString("video_mode", "talker");
        w.WriteEndObject();
    }

    private static void WritePlayback(Utf8JsonWriter w, SimPlayback playback, string state)
    {
        w.WriteStartObject();
        w.WriteString("id", playback.Id);
        w.WriteString("media_uri", playback.Media);
        w.WriteString("target_uri", playback.Target);
        w.WriteString("language", "en");
        w.WriteString("state", state);
        w.WriteEndObject();
    }
}
