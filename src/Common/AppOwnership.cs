using System.Text.RegularExpressions;

namespace CallRouter.Common;

/// <summary>
/// Which RabbitMQ user may speak for which app. An app's identity is its RabbitMQ user, which the broker vouches for
/// in the AMQP user_id property. A user owns the app of its own name, plus every app whose whole name matches the
/// pattern configured for that user (Router:AppOwners:USER, e.g. Router__AppOwners__guest=.* on a dev stack).
/// </summary>
public sealed class AppOwnership
{
    /// <summary>The configuration section both the router and the adapters read: one key per user, value = regular expression.</summary>
    public const string Section = "Router:AppOwners";

    private readonly Dictionary<string, Regex> _patterns = new(StringComparer.Ordinal);

    public AppOwnership(IEnumerable<KeyValuePair<string, string>>? owners = null)
    {
        foreach (var (user, pattern) in owners ?? [])
        {
            try
            {
                // Anchored: the pattern must match the whole app name. Linear time, whatever the configuration says.
                _patterns[user] = new Regex($"^(?:{pattern})$", RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
            }
            catch (Exception exception) when (exception is ArgumentException or NotSupportedException)
            {
                throw new ArgumentException($"{Section}:{user}: '{pattern}' is not a usable regular expression: {exception.Message}", exception);
            }
        }
    }

    public bool Owns(string user, string app) =>
        string.Equals(user, app, StringComparison.Ordinal) || (_patterns.TryGetValue(user, out var pattern) && pattern.IsMatch(app));

    /// <summary>Null when <paramref name="userId"/> may speak for <paramref name="app"/>; otherwise why not, for the sender to read.</summary>
    public string? Refusal(string? userId, string app, string what)
    {
        if (string.IsNullOrEmpty(userId))
            return $"the {what} has no user_id: set the AMQP user_id property to your RabbitMQ user name (the broker checks it)";
        return Owns(userId, app)
            ? null
            : $"RabbitMQ user '{userId}' does not own app '{app}' (a user owns the app of its own name, and those matched by Router__AppOwners__{userId})";
    }
}
