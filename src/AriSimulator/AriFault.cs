namespace CallRouter.AriSimulator;

/// <summary>How an injected fault answers a REST request.</summary>
public enum AriFaultKind
{
    /// <summary>500 Internal Server Error; the operation is not done.</summary>
    ServerError,

    /// <summary>The connection is reset without an answer; the operation is not done.</summary>
    Reset,

    /// <summary>The operation is done at once, but its answer comes only after the wait (a slow proxy).</summary>
    SlowAnswer,

    /// <summary>Nothing happens for the wait, then the operation is done and answered (a slow Asterisk).</summary>
    SlowStart,
}

/// <summary>
/// A fault to inject into one REST request. A slow one waits <paramref name="Delay"/>, or until <paramref name="Until"/>'s
/// task ends when it is given (a test holds a request at an exact point: for SlowAnswer, after the operation is done).
/// </summary>
public sealed record AriFault(AriFaultKind Kind, TimeSpan Delay = default, Func<Task>? Until = null);

/// <summary>
/// Chooses a fault for a REST request, or null for none: <paramref name="Operation"/> is the route's last segment
/// ("variable", "continue", "move", "subscription", "channels"), <paramref name="ChannelId"/> the channel it names, if any.
/// </summary>
public delegate AriFault? AriFaultInjector(string Operation, string? ChannelId);
