namespace CallRouter.Router.Saga;

/// <summary>A message the router sends itself when a timer falls due (in process through the mediator, or through the broker).</summary>
public interface ICallTimer;

/// <summary>The broadcast's deadline passed (router → itself).</summary>
public sealed record BroadcastDeadline(Guid CallId) : ICallTimer;

/// <summary>Claims arrived for a call whose broadcast never came (router → itself).</summary>
public sealed record UnknownCallExpired(Guid CallId) : ICallTimer;

/// <summary>The claim window opened by a call's first claim has closed (router → itself).</summary>
public sealed record ClaimWindowClosed(Guid CallId) : ICallTimer;

/// <summary>A decided call has been remembered long enough (router → itself).</summary>
public sealed record ForgetCall(Guid CallId) : ICallTimer;
