using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace CallRouter.Messages;

/// <summary>The JSON shape every component writes and reads: camelCase, compact, ISO-8601 timestamps.</summary>
public static partial class Wire
{
    /// <summary>Largest message body the router accepts from an app.</summary>
    public const int MaxMessageBytes = 16 * 1024;

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        WriteIndented = false,
    };

    public static byte[] Serialize<T>(T message) => JsonSerializer.SerializeToUtf8Bytes(message, Json);

    /// <summary>App names: letters, digits, '-' and '_', 1 to 64 characters, not starting with '_' (reserved) — no dots, so they are one topic word.</summary>
    public static bool IsValidAppName(string? name) => name is not null && AppNamePattern().IsMatch(name);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    private static partial Regex AppNamePattern();
}
