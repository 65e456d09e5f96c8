namespace CallRouter.Operations;

/// <summary>The operations HTTP endpoint (/metrics, /health/live, /health/ready), bound from the "Http" section (e.g. Http__Urls=http://0.0.0.0:9182).</summary>
public sealed class OperationsOptions
{
    public const string Section = "Http";

    /// <summary>Addresses to listen on, separated by ';'. Port 0 picks a free port; empty turns the endpoint off.</summary>
    public string Urls { get; set; } = "";

    /// <summary>False turns the endpoint off whatever <see cref="Urls"/> says.</summary>
    public bool Enabled { get; set; } = true;
}
