namespace CallRouter.Router.Saga;

/// <summary>The broadcast's deadline passed (router → itself).</summary>
public sealed record BroadcastDeadline(Guid CallId);

/// <summary>Claims arrived for a call whose broadcast never came (router → itself).</summary>
public sealed record UnknownCallExpired(Guid CallId);

/// <summary>The claim window opened by a call's first claim has closed (router → itself).</summary>
public sealed record ClaimWindowClosed(Guid CallId);

/// <summary>A decided call has been remembered long enough (router → itself).</summary>
public sealed record ForgetCall(Guid CallId);
