namespace CallRouter.Messages;

/// <summary>
/// The last event of a controlled call (adapter → the winning app): the session is over, its created channels were hung up
/// and its bridges destroyed; later commands for it are answered not-in-call. <paramref name="Reason"/> is one of
/// <see cref="ControlEnding"/>.
/// </summary>
public sealed record CallControlEnded(Guid CallId, string App, string Reason, string? Detail, DateTimeOffset EndedAt)
{
    public string Type => Topology.Types.CallControlEnded;
}

/// <summary>Why a controlled call's session ended (CallControlEnded.reason).</summary>
public static class ControlEnding
{
    /// <summary>The app sent the caller back to the dialplan (continue).</summary>
    public const string Continued = "continued";

    /// <summary>The app hung up the caller.</summary>
    public const string HungUp = "hung-up";

    /// <summary>The caller hung up.</summary>
    public const string CallerHangup = "caller-hangup";

    /// <summary>The app stopped heartbeating (or said it was stopping); the caller went back to the dialplan FAILED / app-gone.</summary>
    public const string AppGone = "app-gone";

    /// <summary>The adapter is stopping; the caller went back to the dialplan FAILED / adapter-stopping.</summary>
    public const string AdapterStopping = "adapter-stopping";

    /// <summary>ARI kept failing while the call was handed to the app; the caller went back to the dialplan FAILED / ari-error.</summary>
    public const string AriError = "ari-error";
}
