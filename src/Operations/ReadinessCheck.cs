namespace CallRouter.Operations;

/// <summary>One dependency /health/ready waits for (the broker connection, the ARI WebSocket). Must be cheap: it runs on every probe.</summary>
public interface IReadinessCheck
{
    /// <summary>Short name shown in the probe's JSON body, e.g. "broker".</summary>
    string Name { get; }

    /// <summary>Null when the dependency is up; otherwise why it is not.</summary>
    string? Problem();
}

/// <summary>A readiness check from a name and a function.</summary>
public sealed class ReadinessCheck(string name, Func<string?> problem) : IReadinessCheck
{
    public string Name => name;

    public string? Problem() => problem();
}
