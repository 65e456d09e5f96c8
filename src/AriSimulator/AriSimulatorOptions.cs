namespace CallRouter.AriSimulator;

/// <summary>Settings of one <see cref="AriSimulator"/> instance.</summary>
public sealed record AriSimulatorOptions
{
    /// <summary>TCP port on 127.0.0.1; 0 picks a free port (read it from <see cref="AriSimulator.Port"/>).</summary>
    public int Port { get; init; }

    /// <summary>ARI user accepted by Basic auth and api_key.</summary>
    public string User { get; init; } = "router";

    /// <summary>ARI password accepted by Basic auth and api_key.</summary>
    public string Password { get; init; } = "secret";

    /// <summary>Value of asterisk_id in every event.</summary>
    public string AsteriskId { get; init; } = "02:fc:00:00:00:01";

    /// <summary>If set, a channel that left Stasis (continue, move, or FAILED) hangs up by itself this long after, cause 16.</summary>
    public TimeSpan? HangupAfterHandover { get; init; }

    /// <summary>
    /// Whether the ARRAY dialplan function is there (func_strings, loaded by default): a variable set named
    /// ARRAY(A,B)=a,b sets A and B in order, each with its ChannelVarset, as Asterisk's pbx_builtin_setvar_helper does.
    /// Without it, a set whose name ends in ')' answers 400 "Failed to execute function" (res_ari with no such function).
    /// </summary>
    public bool ArrayFunction { get; init; } = true;

    /// <summary>How long a playback that can be played (anything but a "does-not-exist" sound) plays before PlaybackFinished "done".</summary>
    public TimeSpan PlaybackDuration { get; init; } = TimeSpan.FromMilliseconds(300);
}
