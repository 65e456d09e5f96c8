namespace CallRouter.Router.Saga;

/// <summary>The broadcast's deadline passed (router → itself).</summary>
public sealed record BroadcastDeadline(Guid CallId);

/// <summary>Claims arrived for a call whose broadcast never came (router → itself).</summary>
public sealed record UnknownCallExpired(Guid CallId);

/// <summary>A decided call has been remembered long enough (router → itself).</summary>
public sealed record ForgetCall(Guid CallId);
