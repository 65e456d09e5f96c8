namespace CallRouter.Messages;

/// <summary>An app says it is alive (app → every adapter). Status "stopping" removes it at once.</summary>
public sealed record AppHeartbeat(string App, string? Instance = null, string? Status = null);
