using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using RabbitMQ.Client;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>
/// The example apps of examples/ (Python + pika, Node + amqplib, C# + RabbitMQ.Client), each its own process and
/// knowing only the README's wire contract, race for calls through the whole stack.
/// </summary>
public sealed partial class ExampleAppsRaceTests : RoutingTest
{
    private const int Calls = 60;

    // The draw among claims that arrive within 250 ms of the first, so that every language wins some calls
    // whatever its speed on a busy machine (first-claim-wins would mostly crown the fastest).
    private readonly ITestOutputHelper _output;

    public ExampleAppsRaceTests(ITestOutputHelper output)
    {
        _output = output;
        Stack.RouterSettings["Router:ClaimWindow"] = "00:00:00.250";
    }

    [Fact]
    public async Task Python_Node_and_CSharp_examples_race_for_60_calls_one_winner_each_matching_what_they_print_and_each_says_stopping_on_SIGTERM()
    {
        RequireTools();
        var broker = Stack.Broker.Options;

        // Taps: copies of every heartbeat and every claim the apps publish, to check the AMQP properties they set.
        var factory = new ConnectionFactory
        {
            HostName = broker.Host, Port = broker.Port, VirtualHost = broker.VirtualHost, UserName = broker.User, Password = broker.Password,
        };
        await using var tapConnection = await factory.CreateConnectionAsync();
        await using var tap = await tapConnection.CreateChannelAsync();
        var heartbeatTap = (await tap.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await tap.QueueBindAsync(heartbeatTap, Topology.HeartbeatExchange, "");
        var claimTap = (await tap.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await tap.QueueBindAsync(claimTap, Topology.ClaimExchange, "");

        // The commands the README gives, each as a least-privileged app user made by infra/add-app-user.sh, with a
        // dialplan target each, so the channel shows whose claim won.
        var (sales, support, billing) = (await Stack.Broker.CreateAppUser("sales"), await Stack.Broker.CreateAppUser("support"), await Stack.Broker.CreateAppUser("billing"));
        using var python = ExampleApp.Start("python", sales.User, sales, "/usr/bin/python3", "examples/python/claimant.py", sales.User, "python,s,1");
        using var node = ExampleApp.Start("node", support.User, support, "node", "examples/node/claimant.js", support.User, "node,s,1");
        using var csharp = ExampleApp.Start("csharp", billing.User, billing, "dotnet", ExampleApp.CSharpClaimantDll, billing.User, "csharp,s,1");
        ExampleApp[] apps = [python, node, csharp];
        string Outputs() => string.Join('\n', apps.Select(a => a.Describe()));

        foreach (var app in apps)
            await Within(Stack.WaitUntilLive(app.App), Outputs);

        var channels = Enumerable.Range(0, Calls)
            .Select(i => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=10000", $"filter=^({sales.User}|{support.User}|{billing.User})$"], callerNumber: $"555{i:D4}"))
            .ToList();
        await Within(Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(60)), Outputs);
        await Within(Eventually.True(() => apps.Sum(a => a.Lines.Count(IsOutcome)) == Calls * apps.Length, TimeSpan.FromSeconds(30),
            $"expected {Calls * apps.Length} WON/LOST lines"), Outputs);

        // The channels: every call SUCCESS with one winner from the audience, continued at the winner's target.
        var languageOf = apps.ToDictionary(a => a.App, a => a.Language);
        var channelByCall = new Dictionary<string, AriSimulator.SimChannel>();
        foreach (var channel in channels)
        {
            Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
            var winner = channel.Variables[CallHandover.WinnerVariable];
            Assert.Contains(winner, languageOf.Keys);
            Assert.Equal(new AriSimulator.DialplanLocation(languageOf[winner], "s", 1), channel.ContinuedTo);
            channelByCall.Add(channel.Variables[CallHandover.CallIdVariable], channel);
        }

        // What the apps printed: one answer per call each; exactly one WON per call, by the channel's winner,
        // naming its channel and caller; every other answer LOST to that winner.
        var won = new Dictionary<string, string>();
        foreach (var app in apps)
        {
            var lines = app.Lines.ToList();
            Assert.True(lines[0] == $"{app.App}: listening on app.{app.App}", app.Describe());
            Assert.True(lines.Count == Calls + 1, app.Describe());
            var answered = new HashSet<string>();
            foreach (var line in lines.Skip(1))
            {
                if (WonLine().Match(line) is { Success: true } w)
                {
                    var channel = channelByCall[w.Groups["call"].Value];
                    Assert.True(won.TryAdd(w.Groups["call"].Value, app.App), $"second WON for one call: {line}\n{Outputs()}");
                    Assert.Equal(app.App, channel.Variables[CallHandover.WinnerVariable]);
                    Assert.Equal(channel.Id, w.Groups["channel"].Value);
                    Assert.Equal(channel.CallerNumber, w.Groups["caller"].Value);
                    answered.Add(w.Groups["call"].Value);
                }
                else
                {
                    var l = LostLine().Match(line);
                    Assert.True(l.Success, $"not a WON or LOST line: '{line}'\n{app.Describe()}");
                    Assert.Equal(RejectReason.AlreadyClaimed, l.Groups["reason"].Value);
                    Assert.Equal(channelByCall[l.Groups["call"].Value].Variables[CallHandover.WinnerVariable], l.Groups["winner"].Value);
                    answered.Add(l.Groups["call"].Value);
                }
            }
            Assert.Equal(channelByCall.Keys.Order(), answered.Order());
        }
        Assert.Equal(Calls, won.Count);
        var wins = apps.ToDictionary(a => a.Language, a => won.Values.Count(w => w == a.App));
        Assert.True(wins.Values.All(w => w > 0), $"a language won nothing: {string.Join(", ", wins.Select(w => $"{w.Key}={w.Value}"))}");
        _output.WriteLine($"example apps race, wins of {Calls}: {string.Join(", ", wins.Select(w => $"{w.Key}={w.Value}"))}");

        // Every claim as the contract says: JSON, a correlation id, direct reply-to, and user_id = the user connected as.
        var claims = await Drain(tap, claimTap);
        Assert.Equal(Calls * apps.Length, claims.Count);
        foreach (var (properties, body) in claims)
        {
            var claim = JsonDocument.Parse(body).RootElement;
            var from = $"claim {claim} from {languageOf.GetValueOrDefault(claim.GetProperty("app").GetString()!, "an unknown app")}";
            Assert.True(properties.ContentType == "application/json", $"{from}: content_type {properties.ContentType}");
            Assert.True(properties.UserId == claim.GetProperty("app").GetString(), $"{from}: user_id '{properties.UserId}', not its app user");
            Assert.False(string.IsNullOrEmpty(properties.CorrelationId), $"{from}: no correlation_id");
            Assert.True(properties.ReplyTo?.StartsWith("amq.rabbitmq.reply-to.", StringComparison.Ordinal), $"{from}: reply_to {properties.ReplyTo}");
            Assert.Contains(claim.GetProperty("callId").GetString()!, channelByCall.Keys);
        }

        // SIGTERM: each app says "stopping" (its last heartbeat) and exits 0.
        foreach (var app in apps)
            await app.Terminate();
        foreach (var app in apps)
        {
            await app.WaitForExit(TimeSpan.FromSeconds(15));
            Assert.True(app.ExitCode == 0, app.Describe());
        }
        var heartbeats = await Drain(tap, heartbeatTap);
        foreach (var app in apps)
        {
            var own = heartbeats.Select(h => (h.Properties, Body: JsonDocument.Parse(h.Body).RootElement))
                .Where(h => h.Body.GetProperty("app").GetString() == app.App).ToList();
            Assert.True(own.Count >= 2, $"{app.Language}: {own.Count} heartbeats");
            Assert.All(own, h => Assert.True(h.Properties.UserId == app.App, $"{app.Language}: heartbeat user_id '{h.Properties.UserId}'"));
            Assert.All(own, h => Assert.True(h.Properties.ContentType == "application/json", $"{app.Language}: heartbeat content_type {h.Properties.ContentType}"));
            Assert.All(own[..^1], h => Assert.True(h.Body.EnumerateObject().Count() == 1, $"{app.Language}: heartbeat {h.Body} before the last"));
            Assert.True(own[^1].Body.TryGetProperty("status", out var status) && status.GetString() == "stopping",
                $"{app.Language}: its last heartbeat was {own[^1].Body}, not status stopping");
        }
    }

    /// <summary>A missing interpreter or library fails here, saying what to install, instead of as a timeout later.</summary>
    private static void RequireTools()
    {
        Assert.True(Run("/usr/bin/python3", "-c", "import pika") == 0,
            "the Python example needs /usr/bin/python3 with the Debian package python3-pika: run infra/provision.sh");
        Assert.True(Run("node", "--version") == 0, "the Node example needs node on PATH: install Node.js");
        Assert.True(Directory.Exists(Path.Combine(ExampleApp.RepositoryRoot, "examples", "node", "node_modules", "amqplib")),
            "the Node example needs amqplib: run 'npm ci' in examples/node (infra/provision.sh does)");
        Assert.True(File.Exists(ExampleApp.CSharpClaimantDll), $"the C# example was not built: {ExampleApp.CSharpClaimantDll}");
    }

    private static int Run(string fileName, params string[] arguments)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(fileName, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            process.WaitForExit();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }

    private static bool IsOutcome(string line) => line.StartsWith("WON ", StringComparison.Ordinal) || line.StartsWith("LOST ", StringComparison.Ordinal);

    /// <summary>Awaits a step; when it fails, the apps' output goes with the failure.</summary>
    private static async Task Within(Task step, Func<string> outputs)
    {
        try
        {
            await step;
        }
        catch (TimeoutException exception)
        {
            throw new TimeoutException($"{exception.Message}\n{outputs()}", exception);
        }
    }

    private static async Task<List<(IReadOnlyBasicProperties Properties, byte[] Body)>> Drain(IChannel channel, string queue)
    {
        var messages = new List<(IReadOnlyBasicProperties, byte[])>();
        while (await channel.BasicGetAsync(queue, autoAck: true) is { } message)
            messages.Add((message.BasicProperties, message.Body.ToArray()));
        return messages;
    }

    [GeneratedRegex(@"^WON (?<call>\S+) channel=(?<channel>\S+) caller=(?<caller>\S+)$")]
    private static partial Regex WonLine();

    [GeneratedRegex(@"^LOST (?<call>\S+) reason=(?<reason>\S+) winner=(?<winner>\S*)$")]
    private static partial Regex LostLine();
}
