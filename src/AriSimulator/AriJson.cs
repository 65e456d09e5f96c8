using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace CallRouter.AriSimulator;

/// <summary>Writes channels, events and REST bodies in the exact field order a real Asterisk uses.</summary>
internal static class AriJson
{
    // Relaxed escaping keeps "+0000" and "Alice <5551234>" literal, as Asterisk sends them.
    internal static readonly JsonWriterOptions Options = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        SkipValidation = true,
    };

    public static byte[] Message(string message) =>
        Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("message", message);
            w.WriteEndObject();
        });

    public static byte[] Channel(SimChannel channel) => Write(w => WriteChannel(w, channel, channel.Facts));

    public static byte[] Channels(IEnumerable<SimChannel> channels) =>
        Write(w =>
        {
            w.WriteStartArray();
            foreach (var ch in channels)
            {
                WriteChannel(w, ch, ch.Facts);
            }

            w.WriteEndArray();
        });

    public static byte[] Variable(string value) =>
        Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("value", value);
            w.WriteEndObject();
        });

    public static byte[] Application(string name, IEnumerable<string> channelIds) =>
        Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            WriteStrings(w, "channel_ids", channelIds);
            WriteStrings(w, "bridge_ids", []);
            WriteStrings(w, "endpoint_ids", []);
            WriteStrings(w, "device_names", []);
            WriteStrings(w, "events_allowed", []);
            WriteStrings(w, "events_excluded", []);
            w.WriteEndObject();
        });

    public static byte[] Ping(string asteriskId) =>
        Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("asterisk_id", asteriskId);
            w.WriteString("ping", "pong");
            w.WriteString("timestamp", AriTime.Now());
            w.WriteEndObject();
        });

    /// <summary>Serializes an event for one application (the "application" field differs per recipient).</summary>
    public static byte[] Event(AriEvent e, string application, string asteriskId) =>
        Write(w =>
        {
            w.WriteStartObject();
            switch (e.Type)
            {
                case "StasisStart":
                    WriteHead(w, e);
                    WriteStrings(w, "args", e.Args!);
                    WriteChannelProperty(w, e);
                    break;
                case "ChannelVarset":
                    w.WriteString("variable", e.Variable);
                    w.WriteString("value", e.Value);
                    WriteHead(w, e);
                    WriteChannelProperty(w, e);
                    break;
                case "ChannelHangupRequest":
                    w.WriteNumber("cause", e.Cause);
                    if (e.Soft)
                    {
                        w.WriteBoolean("soft", true);
                    }

                    WriteHead(w, e);
                    WriteChannelProperty(w, e);
                    break;
                case "ChannelDestroyed":
                    WriteHead(w, e);
                    w.WriteNumber("cause", e.Cause);
                    w.WriteString("cause_txt", AriTime.CauseText(e.Cause));
                    WriteChannelProperty(w, e);
                    break;
                case "ApplicationMoveFailed":
                    WriteHead(w, e);
                    WriteChannelProperty(w, e);
                    w.WriteString("destination", e.Destination);
                    WriteStrings(w, "args", e.Args!);
                    break;
                default: // StasisEnd
                    WriteHead(w, e);
                    WriteChannelProperty(w, e);
                    break;
            }

            w.WriteString("asterisk_id", asteriskId);
            w.WriteString("application", application);
            w.WriteEndObject();
        });

    private static void WriteHead(Utf8JsonWriter w, AriEvent e)
    {
        w.WriteString("type", e.Type);
        w.WriteString("timestamp", e.Timestamp);
    }

    private static void WriteChannelProperty(Utf8JsonWriter w, AriEvent e)
    {
        w.WritePropertyName("channel");
        WriteChannel(w, e.Channel, e.Facts);
    }

    internal static void WriteChannel(Utf8JsonWriter w, SimChannel ch, ChannelFacts f)
    {
        w.WriteStartObject();
        w.WriteString("id", ch.Id);
        w.WriteString("name", ch.Name);
        w.WriteString("state", f.State);
        w.WriteString("protocol_id", "");
        WriteParty(w, "caller", ch);
        WriteParty(w, "connected", ch);
        w.WriteString("accountcode", "");
        w.WriteStartObject("dialplan");
        w.WriteString("context", f.Dialplan.Context);
        w.WriteString("exten", f.Dialplan.Exten);
        w.WriteNumber("priority", f.Dialplan.Priority);
        w.WriteString("app_name", f.Dialplan.AppName);
        w.WriteString("app_data", f.Dialplan.AppData);
        w.WriteEndObject();
        w.WriteString("creationtime", ch.CreationTime);
        w.WriteString("language", "en");
        w.WriteEndObject();
    }

    private static void WriteParty(Utf8JsonWriter w, string property, SimChannel ch)
    {
        w.WriteStartObject(property);
        w.WriteString("name", ch.CallerName);
        w.WriteString("number", ch.CallerNumber);
        w.WriteEndObject();
    }

    internal static void WriteStrings(Utf8JsonWriter w, string property, IEnumerable<string> values)
    {
        w.WriteStartArray(property);
        foreach (var v in values)
        {
            w.WriteStringValue(v);
        }

        w.WriteEndArray();
    }

    internal static byte[] Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer, Options))
        {
            body(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }
}
