namespace CallRouter.Messages;

/// <summary>How a broadcast ended; the value the dialplan reads in ROUTER_STATUS.</summary>
public static class CallStatus
{
    public const string Success = "SUCCESS";
    public const string Timeout = "TIMEOUT";
    public const string Failed = "FAILED";
    public const string Abandoned = "ABANDONED";
}

/// <summary>Why a claim was rejected (ClaimReply.reason).</summary>
public static class RejectReason
{
    /// <summary>Another app won (StasisBroadcast's 409).</summary>
    public const string AlreadyClaimed = "already-claimed";

    /// <summary>No broadcast with this call id is known (StasisBroadcast's 404).</summary>
    public const string NotFound = "not-found";

    /// <summary>The broadcast ended: timed out, abandoned, failed or handed over.</summary>
    public const string Finished = "finished";

    /// <summary>The claim itself is wrong: malformed JSON, a missing or mistyped field, an app outside the audience.</summary>
    public const string InvalidRequest = "invalid-request";

    /// <summary>The claim's RabbitMQ user (AMQP user_id) does not own the app it claims for, or the claim has no user_id.</summary>
    public const string Forbidden = "forbidden";

    /// <summary>The router could not decide the claim now (its database or broker failed past the retries): claim again.</summary>
    public const string Unavailable = "unavailable";
}

/// <summary>Why a call ended the way it did: the value the dialplan reads in ROUTER_REASON.</summary>
public static class DispositionReason
{
    public const string Claimed = "claimed";
    public const string NoClaim = "no-claim";
    public const string NoLiveApp = "no-live-app";
    public const string InvalidFilter = "invalid-filter";
    public const string InvalidOptions = "invalid-options";
    public const string CallerHangup = "caller-hangup";
    public const string RouterNoAnswer = "router-no-answer";
    public const string AdapterRestarted = "adapter-restarted";
    public const string MoveFailed = "move-failed";

    /// <summary>The router's queue was over the adapter's admission limit: the call was not offered (FAILED at once).</summary>
    public const string Overloaded = "overloaded";

    /// <summary>The winner took control of the call over the bus (claim with "control": true).</summary>
    public const string Controlled = "controlled";

    /// <summary>The app controlling the call stopped heartbeating or said it was stopping.</summary>
    public const string AppGone = "app-gone";

    /// <summary>The adapter stopped while an app controlled the call.</summary>
    public const string AdapterStopping = "adapter-stopping";

    /// <summary>CDR only: a channel the controlling app created for a call (its row's parent_call_id is the call).</summary>
    public const string Created = "created";
    /// <summary>ARI kept failing (5xx, timeout, reset) while the adapter handed the call over; ROUTER_DETAIL says what failed.</summary>
    public const string AriError = "ari-error";
}
