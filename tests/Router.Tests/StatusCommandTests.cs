using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Status;
using CallRouter.Tests.Infrastructure;
using Spectre.Console;
using Xunit;

namespace CallRouter.Tests;

/// <summary>The operators' status command, run with --once against a live stack: it reads only /metrics and the management API.</summary>
public sealed class StatusCommandTests : RoutingTest
{
    [Fact]
    public async Task Once_names_the_live_apps_with_their_wins_the_adapter_node_and_the_queues()
    {
        var alpha = await Stack.AddApp("alpha");
        await Stack.AddApp("beta", autoClaim: false);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "filter=^alpha$"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        await Eventually.True(() => alpha.Replies.Count == 1, TimeSpan.FromSeconds(10), "alpha's claim was not answered");

        // The management API lists new consumers a moment after they start: wait until every one shows.
        var (exit, output) = await RunStatusUntil(o => !o.Contains("│ -") && ConsumersShown(o, "alpha", "beta", "routers connected", $"adapter {RoutingStack.Node}"),
            "--once", "--router", RoutingStack.HttpAddress(Stack.Router!).ToString(),
            "--adapter", RoutingStack.HttpAddress(Stack.Adapter!).ToString(),
            "--vhost", Stack.Broker.Options.VirtualHost);

        Assert.Equal(0, exit);
        //                 app      live on            wins  timeouts claims queue        waiting consumers
        Assert.Equal(["alpha", RoutingStack.Node, "1", "0", "1", "app.alpha", "0", "1"], Row(output, "alpha"));
        Assert.Equal(["beta", RoutingStack.Node, "0", "0", "0", "app.beta", "0", "1"], Row(output, "beta"));
        Assert.Equal([$"adapter {RoutingStack.Node}", Topology.AdapterQueue(RoutingStack.Node), "0", "1"], Row(output, $"adapter {RoutingStack.Node}"));
        Assert.Equal(["routers connected", Topology.RouterQueue, "0", "1"], Row(output, "routers connected"));
        Assert.Equal(["error queue", Topology.AdapterQueue(RoutingStack.Node) + "_error", "0", "0"], Row(output, "error queue", Topology.AdapterQueue(RoutingStack.Node) + "_error"));
        Assert.Equal(["error queue", Topology.HeartbeatExchange + "_error", "0", "0"], Row(output, "error queue", Topology.HeartbeatExchange + "_error"));
        var adapter = Row(output, RoutingStack.HttpAddress(Stack.Adapter!).ToString());
        Assert.Equal([RoutingStack.Node, "up", "up", "0", "1", "", "1"], adapter[1..8]);
        Assert.Equal("alpha, beta", adapter[^1]);
        Assert.Contains("not configured (set Postgres__ConnectionString)", output);
        Assert.Contains("open broadcasts: 0", output);
        Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
    }

    [Fact]
    public async Task Sources_that_cannot_be_read_show_as_unavailable_and_the_command_still_succeeds()
    {
        // The management API lists a new consumer a moment after it starts: wait for the router's to show.
        var (exit, output) = await RunStatusUntil(o => !o.Contains("│ -") && ConsumersShown(o, "routers connected"),
            "--once", "--router", "http://127.0.0.1:1", "--adapter", "http://127.0.0.1:1",
            "--vhost", Stack.Broker.Options.VirtualHost, "--postgres", "Host=127.0.0.1;Port=1;Username=cdr;Password=cdr;Database=cdr");

        Assert.Equal(0, exit);
        Assert.Contains("routers up: 0/1  adapters up: 0/1", output);
        Assert.Equal(3, output.Split('\n').Count(line => line.Contains("unavailable:")));
        Assert.Equal(["routers connected", Topology.RouterQueue, "0", "1"], Row(output, "routers connected"));
    }

    /// <summary>
    /// The management API updates queue depths at its statistics interval (5 s by default) and shows "-" for a queue
    /// it has no figures for yet: run the command until <paramref name="settled"/> holds for its output, or 20 s pass.
    /// </summary>
    private static async Task<(int Exit, string Output)> RunStatusUntil(Func<string, bool> settled, params string[] args)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var (exit, output) = await RunStatus(args);
            if (settled(output) || DateTime.UtcNow > deadline)
                return (exit, output);
            await Task.Delay(250);
        }
    }

    private static async Task<(int Exit, string Output)> RunStatus(params string[] args)
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 400;
        // Only the broker's address comes from this process' environment (as TestBroker's does); no CDR database.
        var exit = await StatusCommand.Run(args, console,
            name => name is "RABBITMQ_HOST" or "RABBITMQ_MANAGEMENT_PORT" or "RABBITMQ_USER" or "RABBITMQ_PASSWORD" ? Environment.GetEnvironmentVariable(name) : null,
            CancellationToken.None);
        return (exit, output.ToString());
    }

    /// <summary>The cells of the one table row whose cells include all of <paramref name="cells"/>.</summary>
    /// <summary>Each named row's last cell (its consumers) reads 1.</summary>
    private static bool ConsumersShown(string output, params string[] rows) =>
        rows.All(name => output.Split('\n').Select(line => line.Split('│').Select(c => c.Trim()).ToArray())
            .Any(row => row.Length > 2 && row[1] == name && row[^2] == "1"));

    private static string[] Row(string output, params string[] cells)
    {
        var rows = output.Split('\n')
            .Select(line => line.Split('│').Select(c => c.Trim()).ToArray())
            .Where(row => row.Length > 2 && cells.All(row.Contains))
            .ToList();
        var row = Assert.Single(rows);
        return row[1..^1];
    }
}

/// <summary>The status command line (Spectre.Console.Cli) and its environment fallbacks, without a stack.</summary>
public sealed class StatusCommandLineTests
{
    [Fact]
    public void Arguments_win_over_the_environment_which_wins_over_the_defaults()
    {
        var environment = new Dictionary<string, string>
        {
            ["ROUTER_METRICS_URLS"] = "http://r1:9180, http://r2:9182/",
            ["ADAPTER_METRICS_URLS"] = "http://a1:9181",
            ["RABBITMQ_HOST"] = "mq",
            ["RABBITMQ_MANAGEMENT_PORT"] = "15673",
            ["RABBITMQ_USER"] = "ops",
            ["RABBITMQ_PASSWORD"] = "secret",
            ["RABBITMQ_VHOST"] = "calls",
            ["Postgres__ConnectionString"] = "Host=db",
        };
        var fromEnvironment = StatusOptions.From(new StatusCommand.Settings(), environment.GetValueOrDefault);
        Assert.Equal([new Uri("http://r1:9180/"), new Uri("http://r2:9182/")], fromEnvironment.Routers);
        Assert.Equal([new Uri("http://a1:9181/")], fromEnvironment.Adapters);
        Assert.Equal(new Uri("http://mq:15673/api/"), fromEnvironment.Management);
        Assert.Equal(("ops", "secret", "calls", "Host=db"), (fromEnvironment.User, fromEnvironment.Password, fromEnvironment.VirtualHost, fromEnvironment.PostgresConnectionString));
        Assert.False(fromEnvironment.Once);
        Assert.Equal(TimeSpan.FromSeconds(2), fromEnvironment.Interval);

        var fromArguments = StatusOptions.From(new StatusCommand.Settings
        {
            Once = true, Interval = 0.5, Routers = ["http://r3:1"], Adapters = ["http://a2:2", "http://a3:3"], VirtualHost = "other", Postgres = "Host=other",
        }, environment.GetValueOrDefault);
        Assert.Equal([new Uri("http://r3:1/")], fromArguments.Routers);
        Assert.Equal([new Uri("http://a2:2/"), new Uri("http://a3:3/")], fromArguments.Adapters);
        Assert.Equal(("other", "Host=other", true, TimeSpan.FromSeconds(0.5)),
            (fromArguments.VirtualHost, fromArguments.PostgresConnectionString, fromArguments.Once, fromArguments.Interval));

        var defaults = StatusOptions.From(new StatusCommand.Settings(), _ => null);
        Assert.Equal([new Uri("http://localhost:9180/")], defaults.Routers);
        Assert.Equal([new Uri("http://localhost:9181/")], defaults.Adapters);
        Assert.Equal(new Uri("http://localhost:15672/api/"), defaults.Management);
        Assert.Equal(("guest", "guest", "/", null), (defaults.User, defaults.Password, defaults.VirtualHost, defaults.PostgresConnectionString));
    }

    [Theory]
    [InlineData("Unknown option", "--bogus")]
    [InlineData("--interval must be a positive number of seconds", "--interval", "0")]
    [InlineData("'not a url' is not an absolute URL", "--once", "--router", "not a url")]
    [InlineData("--once and --watch exclude each other", "--once", "--watch")]
    public async Task A_bad_command_line_fails_with_the_reason_and_reads_nothing(string reason, params string[] args)
    {
        var (exit, output) = await Run(args);
        Assert.NotEqual(0, exit);
        Assert.Contains(reason, output);
    }

    [Fact]
    public async Task Help_lists_every_option_and_exits_0()
    {
        var (exit, output) = await Run("--help");
        Assert.Equal(0, exit);
        foreach (var option in new[] { "--once", "--watch", "--interval", "--router", "--adapter", "--vhost", "--postgres", "ROUTER_METRICS_URLS", "RABBITMQ_VHOST", "Postgres__ConnectionString" })
            Assert.Contains(option, output);
    }

    private static async Task<(int Exit, string Output)> Run(params string[] args)
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 400;
        // A command line taken for a good one would start watching: the token ends that, and the exit code tells.
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var exit = await StatusCommand.Run(args, console, _ => null, stop.Token);
        return (exit, output.ToString());
    }
}
