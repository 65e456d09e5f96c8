namespace CallRouter.Status;

/// <summary>
/// What the status command reads, from the environment a deployment already has, overridden by the command line
/// (<see cref="StatusCommand.Settings"/>): ROUTER_METRICS_URLS / ADAPTER_METRICS_URLS (comma-separated), RABBITMQ_HOST,
/// RABBITMQ_MANAGEMENT_PORT, RABBITMQ_USER, RABBITMQ_PASSWORD, RABBITMQ_VHOST, Postgres__ConnectionString.
/// </summary>
public sealed record StatusOptions
{
    public IReadOnlyList<Uri> Routers { get; init; } = [new("http://localhost:9180/")];
    public IReadOnlyList<Uri> Adapters { get; init; } = [new("http://localhost:9181/")];
    public Uri Management { get; init; } = new("http://localhost:15672/api/");
    public string User { get; init; } = "guest";
    public string Password { get; init; } = "guest";
    public string VirtualHost { get; init; } = "/";
    public string? PostgresConnectionString { get; init; }
    public bool Once { get; init; }
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The options: each command-line value if given, else the environment's, else the default.</summary>
    public static StatusOptions From(StatusCommand.Settings settings, Func<string, string?> environment)
    {
        string? Env(string name) => environment(name) is { Length: > 0 } value ? value : null;
        var host = Env("RABBITMQ_HOST") ?? "localhost";
        var port = Env("RABBITMQ_MANAGEMENT_PORT") ?? "15672";
        return new StatusOptions
        {
            Routers = Urls(settings.Routers) ?? Urls(Env("ROUTER_METRICS_URLS")?.Split(',')) ?? [new("http://localhost:9180/")],
            Adapters = Urls(settings.Adapters) ?? Urls(Env("ADAPTER_METRICS_URLS")?.Split(',')) ?? [new("http://localhost:9181/")],
            Management = new Uri($"http://{host}:{port}/api/"),
            User = Env("RABBITMQ_USER") ?? "guest",
            Password = Env("RABBITMQ_PASSWORD") ?? "guest",
            VirtualHost = settings.VirtualHost ?? Env("RABBITMQ_VHOST") ?? "/",
            PostgresConnectionString = settings.Postgres ?? Env("Postgres__ConnectionString"),
            Once = settings.Once,
            Interval = settings.Interval is { } seconds ? TimeSpan.FromSeconds(seconds) : TimeSpan.FromSeconds(2),
        };
    }

    /// <summary>The absolute URLs among <paramref name="texts"/>, or null when there are none.</summary>
    private static List<Uri>? Urls(IEnumerable<string>? texts) =>
        texts?.Select(t => t.Trim()).Where(t => t.Length > 0).Select(Url).OfType<Uri>().ToList() is { Count: > 0 } urls ? urls : null;

    /// <summary>An absolute URL ending with '/', or null.</summary>
    public static Uri? Url(string? text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var url) ? new Uri(url.ToString().TrimEnd('/') + "/") : null;
}
