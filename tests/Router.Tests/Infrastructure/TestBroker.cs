using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text;
using CallRouter.Common;
using CallRouter.Messages;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace CallRouter.Tests.Infrastructure;

/// <summary>
/// The real RabbitMQ (RABBITMQ_HOST / RABBITMQ_PORT / RABBITMQ_MANAGEMENT_PORT, localhost defaults), with a virtual
/// host of its own per fixture so tests never see each other's queues. An unreachable broker fails the test.
/// </summary>
public sealed class TestBroker : IAsyncDisposable
{
    private readonly HttpClient _management;
    private readonly List<string> _users = [];

    private TestBroker(BrokerOptions options, HttpClient management)
    {
        Options = options;
        _management = management;
    }

    public BrokerOptions Options { get; }

    /// <summary>
    /// A broadcast straight to the router's binding (no adapter), typed as an adapter types it: for tests that need a call
    /// the router knows, on a node no adapter serves.
    /// </summary>
    public static async Task PublishToRouter(IChannel channel, CallBroadcast broadcast)
    {
        var properties = new BasicProperties
        {
            Type = Topology.Types.CallBroadcast,
            Headers = new Dictionary<string, object?> { [Topology.MessageTypeHeader] = Topology.MessageTypeUrn(Topology.Types.CallBroadcast) },
        };
        await channel.BasicPublishAsync(Topology.BroadcastExchange, Topology.RouterBroadcastKey, false, properties, Wire.Serialize(broadcast));
    }

    public static async Task<TestBroker> Create()
    {
        var template = new BrokerOptions();
        var port = Environment.GetEnvironmentVariable("RABBITMQ_MANAGEMENT_PORT") ?? "15672";
        var http = new HttpClient { BaseAddress = new Uri($"http://{template.Host}:{port}/api/"), Timeout = TimeSpan.FromSeconds(15) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{template.User}:{template.Password}")));

        var vhost = $"test-{Guid.NewGuid():N}"[..17];
        try
        {
            (await http.PutAsync($"vhosts/{vhost}", null)).EnsureSuccessStatusCode();
            var permissions = new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json");
            (await http.PutAsync($"permissions/{vhost}/{Uri.EscapeDataString(template.User)}", permissions)).EnsureSuccessStatusCode();
        }
        catch (HttpRequestException exception)
        {
            throw new InvalidOperationException(
                $"RabbitMQ management API at {http.BaseAddress} is not reachable; run infra/rabbitmq.sh (or ./test.sh, which does)", exception);
        }

        return new TestBroker(new BrokerOptions
        {
            Host = template.Host, Port = template.Port, User = template.User, Password = template.Password, VirtualHost = vhost,
        }, http);
    }

    /// <summary>A broker of a test's own (a container) as it is, in its default virtual host; its management API is not used.</summary>
    public static TestBroker Of(BrokerOptions options) =>
        new(options, new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{BrokerContainer.FreeLoopbackPort()}/api/"), Timeout = TimeSpan.FromSeconds(1) });

    /// <summary>Messages ready in a queue of this virtual host, as the management API sees them.</summary>
    public async Task<string> GetQueueMessages(string queue, int count = 50)
    {
        var body = new StringContent($$"""{"count":{{count}},"ackmode":"ack_requeue_true","encoding":"auto"}""", Encoding.UTF8, "application/json");
        var response = await _management.PostAsync($"queues/{Uri.EscapeDataString(Options.VirtualHost)}/{Uri.EscapeDataString(queue)}/get", body);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>Consumers on a queue of this virtual host (0 if the queue does not exist yet).</summary>
    public async Task<int> ConsumerCount(string queue)
    {
        using var response = await _management.GetAsync($"queues/{Uri.EscapeDataString(Options.VirtualHost)}/{Uri.EscapeDataString(queue)}");
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
            return 0;
        response.EnsureSuccessStatusCode();
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.TryGetProperty("consumers", out var consumers) ? consumers.GetInt32() : 0;
    }

    /// <summary>Deletes this fixture's virtual host: every connection to it closes and none can be made again (the broker "unreachable").</summary>
    public async Task DeleteVirtualHost() =>
        (await _management.DeleteAsync($"vhosts/{Options.VirtualHost}")).EnsureSuccessStatusCode();

    /// <summary>
    /// A RabbitMQ user for one app, made by infra/add-app-user.sh in this virtual host, with a unique name (users are
    /// global to the broker) that is also the app's name. Deleted with the fixture.
    /// </summary>
    public async Task<BrokerOptions> CreateAppUser(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];
        var password = Guid.NewGuid().ToString("N");
        _users.Add(name);
        await RunInfra("add-app-user.sh", [name, password, Options.VirtualHost]);
        return new BrokerOptions { Host = Options.Host, Port = Options.Port, VirtualHost = Options.VirtualHost, User = name, Password = password };
    }

    /// <summary>Runs one of the infra/ scripts against this broker as its administrator; fails with the script's output.</summary>
    public async Task<string> RunInfra(string script, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("/bin/bash", [Path.Combine(AppContext.BaseDirectory, "infra", script), .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["RABBITMQ_HOST"] = Options.Host;
        start.Environment["RABBITMQ_MANAGEMENT_PORT"] = ManagementPort;
        start.Environment["RABBITMQ_ADMIN_USER"] = Options.User;
        start.Environment["RABBITMQ_ADMIN_PASSWORD"] = Options.Password;
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            start.Environment[key] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"infra/{script} exited {process.ExitCode}: {await stderr}{await stdout}");
        return await stdout;
    }

    /// <summary>GET on the management API, for what a test must read from it (e.g. a queue's effective policy).</summary>
    public async Task<JsonElement> GetJson(string path)
    {
        var response = await _management.GetAsync(path);
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
    }

    /// <summary>Messages ready in a queue right now, as the broker answers a passive declare (0 if the queue does not exist yet).</summary>
    public async Task<uint> MessageCount(string queue)
    {
        await using var connection = await Options.Connect("test message count");
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
        }
        catch (OperationInterruptedException exception) when (exception.ShutdownReason?.ReplyCode == 404)
        {
            return 0; // error queues are made with their first message
        }
    }

    /// <summary>
    /// Closes (as an operator would in the console) every connection to this virtual host whose client-provided name
    /// starts with <paramref name="namePrefix"/>; returns how many. Clients with automatic recovery reconnect by themselves.
    /// </summary>
    public async Task<int> CloseConnections(string namePrefix)
    {
        var closed = 0;
        foreach (var connection in (await GetJson($"vhosts/{Uri.EscapeDataString(Options.VirtualHost)}/connections")).EnumerateArray())
        {
            var clientName = connection.TryGetProperty("client_properties", out var p) && p.TryGetProperty("connection_name", out var n) ? n.GetString() : null;
            if (clientName?.StartsWith(namePrefix, StringComparison.Ordinal) != true)
                continue;
            (await _management.DeleteAsync($"connections/{Uri.EscapeDataString(connection.GetProperty("name").GetString()!)}")).EnsureSuccessStatusCode();
            closed++;
        }
        return closed;
    }

    /// <summary>The connections to this virtual host: the name a client gave it, then the broker's (client address and port → broker).</summary>
    public async Task<string[]> ConnectionNames() =>
        [.. (await GetJson($"vhosts/{Uri.EscapeDataString(Options.VirtualHost)}/connections")).EnumerateArray().Select(c =>
            (c.TryGetProperty("client_properties", out var p) && p.TryGetProperty("connection_name", out var n) ? n.GetString() : "")
            + " " + c.GetProperty("name").GetString())];

    /// <summary>The management API path of a queue in this virtual host.</summary>
    public string QueuePath(string queue) => $"queues/{Uri.EscapeDataString(Options.VirtualHost)}/{Uri.EscapeDataString(queue)}";

    private static string ManagementPort => Environment.GetEnvironmentVariable("RABBITMQ_MANAGEMENT_PORT") ?? "15672";

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _management.DeleteAsync($"vhosts/{Options.VirtualHost}");
            foreach (var user in _users)
                await _management.DeleteAsync($"users/{Uri.EscapeDataString(user)}");
        }
        catch (HttpRequestException)
        {
        }
        _management.Dispose();
    }
}
