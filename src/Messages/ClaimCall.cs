namespace CallRouter.Messages;

/// <summary>An app asks for a call (app → router). Reply goes to the AMQP reply_to with the request's correlation_id.
/// Control: the winner keeps the call in the router's Stasis app and drives it over the bus (ControlCall); AllEvents (with
/// Control only): it also hears the events call control leaves out as noise (ChannelVarset, ChannelDialplan …).</summary>
public sealed record ClaimCall(
    Guid CallId,
    string App,
    DialplanTarget? Target = null,
    string? MoveToApp = null,
    IReadOnlyList<string>? AppArgs = null,
    bool Control = false,
    bool AllEvents = false);

/// <summary>Where the winner wants the call to continue in the dialplan.</summary>
public sealed record DialplanTarget(string Context, string Extension, int Priority);
