using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace CallRouter.Status;

/// <summary>The status command: one snapshot (--once) or a refreshing view until cancelled.</summary>
public sealed class StatusCommand : AsyncCommand<StatusCommand.Settings>
{
    /// <summary>The command line; each option falls back to the environment (<see cref="StatusOptions.From"/>).</summary>
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--once")]
        [Description("Print one snapshot and exit")]
        public bool Once { get; init; }

        [CommandOption("--watch")]
        [Description("Refresh until Ctrl-C (the default)")]
        public bool Watch { get; init; }

        [CommandOption("--interval <SECONDS>")]
        [Description("Seconds between refreshes (default 2)")]
        public double? Interval { get; init; }

        [CommandOption("--router <URL>")]
        [Description("A router's operations endpoint, repeatable (default ROUTER_METRICS_URLS, comma-separated, or http://localhost:9180)")]
        public string[]? Routers { get; init; }

        [CommandOption("--adapter <URL>")]
        [Description("An adapter's operations endpoint, repeatable (default ADAPTER_METRICS_URLS, comma-separated, or http://localhost:9181)")]
        public string[]? Adapters { get; init; }

        [CommandOption("--vhost <VHOST>")]
        [Description("RabbitMQ virtual host (default RABBITMQ_VHOST or /)")]
        public string? VirtualHost { get; init; }

        [CommandOption("--postgres <CONNECTION_STRING>")]
        [Description("The CDR database (default Postgres__ConnectionString; unset: no recent calls)")]
        public string? Postgres { get; init; }

        public override ValidationResult Validate() =>
            Interval is <= 0 ? ValidationResult.Error("--interval must be a positive number of seconds")
            : (Routers ?? []).Concat(Adapters ?? []).FirstOrDefault(u => StatusOptions.Url(u) is null) is { } bad ? ValidationResult.Error($"'{bad}' is not an absolute URL")
            : Once && Watch ? ValidationResult.Error("--once and --watch exclude each other")
            : ValidationResult.Success();
    }

    /// <summary>What the command reads besides its arguments: the environment, the console, and when to stop watching.</summary>
    private sealed record Context(Func<string, string?> Environment, IAnsiConsole Console, CancellationToken Stopping);

    /// <summary>Runs the command line <paramref name="args"/>: 0 when it ran, non-zero (with the usage) for a bad command line.</summary>
    public static Task<int> Run(IReadOnlyList<string> args, IAnsiConsole console, Func<string, string?> environment, CancellationToken cancellationToken)
    {
        var app = new CommandApp<StatusCommand>();
        app.WithData(new Context(environment, console, cancellationToken));
        app.Configure(c =>
        {
            c.SetApplicationName("status");
            c.UseStrictParsing();
            c.ConfigureConsole(console);
        });
        return app.RunAsync(args, cancellationToken);
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var (environment, console, stopping) = (Context)context.Data!;
        var options = StatusOptions.From(settings, environment);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        var token = linked.Token;
        using var reader = new StatusReader(options);
        if (options.Once)
        {
            console.Write(StatusView.Render(await reader.Read(token), options));
            return 0;
        }

        await console.Live(new Markup("reading…")).StartAsync(async live =>
        {
            while (!token.IsCancellationRequested)
            {
                try
                {
                    live.UpdateTarget(StatusView.Render(await reader.Read(token), options));
                    live.Refresh();
                    await Task.Delay(options.Interval, token);
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    break;
                }
            }
        });
        return 0;
    }
}
