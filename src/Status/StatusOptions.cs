namespace CallRouter.Status;

/// <summary>
/// What the status command reads, from the environment a deployment already has, overridden by arguments:
/// --router URL and --adapter URL (repeatable; or ROUTER_METRICS_URLS / ADAPTER_METRICS_URLS, comma-separated),
/// RABBITMQ_HOST, RABBITMQ_MANAGEMENT_PORT, RABBITMQ_USER, RABBITMQ_PASSWORD, RABBITMQ_VHOST (or --vhost),
/// Postgres__ConnectionString (or --postgres), --once, --watch, --interval SECONDS.
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

    public const string Usage =
        "usage: status [--once | --watch] [--interval SECONDS] [--router URL]... [--adapter URL]... [--vhost VHOST] [--postgres CONNECTION_STRING]\n" +
        "environment: ROUTER_METRICS_URLS, ADAPTER_METRICS_URLS (comma-separated), RABBITMQ_HOST, RABBITMQ_MANAGEMENT_PORT, " +
        "RABBITMQ_USER, RABBITMQ_PASSWORD, RABBITMQ_VHOST, Postgres__ConnectionString";

    /// <summary>The options, or an error to print with the usage.</summary>
    public static (StatusOptions? Options, string? Error) Parse(IReadOnlyList<string> args, Func<string, string?> environment)
    {
        string? Env(string name) => environment(name) is { Length: > 0 } value ? value : null;
        var host = Env("RABBITMQ_HOST") ?? "localhost";
        var port = Env("RABBITMQ_MANAGEMENT_PORT") ?? "15672";
        var options = new StatusOptions
        {
            Routers = Urls(Env("ROUTER_METRICS_URLS")) ?? [new("http://localhost:9180/")],
            Adapters = Urls(Env("ADAPTER_METRICS_URLS")) ?? [new("http://localhost:9181/")],
            Management = new Uri($"http://{host}:{port}/api/"),
            User = Env("RABBITMQ_USER") ?? "guest",
            Password = Env("RABBITMQ_PASSWORD") ?? "guest",
            VirtualHost = Env("RABBITMQ_VHOST") ?? "/",
            PostgresConnectionString = Env("Postgres__ConnectionString"),
        };

        List<Uri>? routers = null, adapters = null;
        for (var i = 0; i < args.Count; i++)
        {
            string? Value() => i + 1 < args.Count ? args[++i] : null;
            switch (args[i])
            {
                case "--once":
                    options = options with { Once = true };
                    break;
                case "--watch":
                    options = options with { Once = false };
                    break;
                case "--interval" when double.TryParse(Value(), System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0:
                    options = options with { Interval = TimeSpan.FromSeconds(seconds) };
                    break;
                case "--router" when Url(Value()) is { } url:
                    (routers ??= []).Add(url);
                    break;
                case "--adapter" when Url(Value()) is { } url:
                    (adapters ??= []).Add(url);
                    break;
                case "--vhost" when Value() is { } vhost:
                    options = options with { VirtualHost = vhost };
                    break;
                case "--postgres" when Value() is { } connectionString:
                    options = options with { PostgresConnectionString = connectionString };
                    break;
                default:
                    return (null, $"unknown or incomplete argument '{args[i]}'");
            }
        }
        return (options with { Routers = routers ?? options.Routers, Adapters = adapters ?? options.Adapters }, null);
    }

    private static List<Uri>? Urls(string? commaSeparated) =>
        commaSeparated?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Url).OfType<Uri>().ToList();

    private static Uri? Url(string? text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var url) ? new Uri(url.ToString().TrimEnd('/') + "/") : null;
}
