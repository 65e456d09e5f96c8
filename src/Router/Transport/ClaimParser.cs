using System.Text.Json;
using CallRouter.Messages;

namespace CallRouter.Router.Transport;

/// <summary>Strict reading of an app's claim: every field's type is checked, so a bad claim gets a precise reason.</summary>
public static class ClaimParser
{
    public const int MaxAppArgs = 32;
    public const int MaxTextLength = 256;

    /// <summary>The claim, or why it is invalid (with whatever call id and app could be read, to address the reply).</summary>
    public sealed record Result(ClaimCall? Claim, Guid? CallId, string? App, string? Error);

    public static Result Parse(ReadOnlySpan<byte> body)
    {
        if (body.Length > Wire.MaxMessageBytes)
            return new Result(null, null, null, $"message is {body.Length} bytes; the limit is {Wire.MaxMessageBytes}");

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray());
        }
        catch (JsonException exception)
        {
            return new Result(null, null, null, $"not valid JSON: {exception.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return new Result(null, null, null, $"a claim must be a JSON object, not {root.ValueKind}");

            Guid? callId = null;
            string? app = null;
            if (Text(root, "callId", required: true, out var callIdText) is { } callIdError)
                return new Result(null, null, null, callIdError);
            if (!Guid.TryParse(callIdText, out var parsedCallId))
                return new Result(null, null, null, $"callId '{callIdText}' is not a UUID");
            callId = parsedCallId;

            if (Text(root, "app", required: true, out app) is { } appError)
                return new Result(null, callId, null, appError);
            if (!Wire.IsValidAppName(app))
                return new Result(null, callId, null, $"app '{app}' is not a valid app name (letters, digits, '-', '_'; at most 64)");

            string? moveToApp = null;
            IReadOnlyList<string>? appArgs = null;
            var error = ReadTarget(root, out var target)
                ?? Text(root, "moveToApp", required: false, out moveToApp)
                ?? ReadArgs(root, out appArgs);
            if (error is null && target is not null && moveToApp is not null)
                error = "give either target or moveToApp, not both";
            if (error is null && moveToApp is not null && (moveToApp.Length == 0 || moveToApp.Contains(',')))
                error = $"moveToApp '{moveToApp}' is not a valid ARI application name";
            bool control = false, allEvents = false;
            error ??= ReadFlag(root, "control", out control) ?? ReadFlag(root, "allEvents", out allEvents);
            if (error is null && control && (target is not null || moveToApp is not null))
                error = "control keeps the call in the router's app: give no target or moveToApp with it";
            if (error is null && allEvents && !control)
                error = "allEvents chooses the events of a controlled call: give it with control true";
            if (error is not null)
                return new Result(null, callId, app, error);

            return new Result(new ClaimCall(parsedCallId, app!, target, moveToApp, appArgs, control, allEvents), callId, app, null);
        }
    }

    private static string? ReadFlag(JsonElement root, string name, out bool flag)
    {
        flag = false;
        if (!root.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
            return null;
        if (element.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            return $"{name} must be true or false, not {element.ValueKind}";
        flag = element.GetBoolean();
        return null;
    }

    private static string? Text(JsonElement root, string name, bool required, out string? value)
    {
        value = null;
        if (!root.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
            return required ? $"{name} is missing" : null;
        if (element.ValueKind != JsonValueKind.String)
            return $"{name} must be a string, not {element.ValueKind}";
        value = element.GetString()!;
        return value.Length > MaxTextLength ? $"{name} is longer than {MaxTextLength} characters" : null;
    }

    private static string? ReadTarget(JsonElement root, out DialplanTarget? target)
    {
        target = null;
        if (!root.TryGetProperty("target", out var element) || element.ValueKind == JsonValueKind.Null)
            return null;
        if (element.ValueKind != JsonValueKind.Object)
            return $"target must be an object, not {element.ValueKind}";
        string? extension = null;
        var error = Text(element, "context", required: true, out var context) ?? Text(element, "extension", required: true, out extension);
        if (error is not null)
            return "target." + error;
        if (string.IsNullOrWhiteSpace(context) || string.IsNullOrWhiteSpace(extension))
            return "target.context and target.extension must not be empty";
        if (!element.TryGetProperty("priority", out var priority) || priority.ValueKind == JsonValueKind.Null)
        {
            target = new DialplanTarget(context!, extension!, 1);
            return null;
        }
        if (priority.ValueKind != JsonValueKind.Number || !priority.TryGetInt32(out var number) || number < 1)
            return "target.priority must be a whole number of at least 1";
        target = new DialplanTarget(context!, extension!, number);
        return null;
    }

    private static string? ReadArgs(JsonElement root, out IReadOnlyList<string>? args)
    {
        args = null;
        if (!root.TryGetProperty("appArgs", out var element) || element.ValueKind == JsonValueKind.Null)
            return null;
        if (element.ValueKind != JsonValueKind.Array)
            return $"appArgs must be an array of strings, not {element.ValueKind}";
        if (element.GetArrayLength() > MaxAppArgs)
            return $"appArgs has more than {MaxAppArgs} items";
        var list = new List<string>();
        foreach (var item in element.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
                return $"appArgs must be an array of strings; found {item.ValueKind}";
            var text = item.GetString()!;
            if (text.Length > MaxTextLength || text.Contains(','))
                return $"appArgs items must have no comma and at most {MaxTextLength} characters";
            list.Add(text);
        }
        args = list;
        return null;
    }
}
