using System.Net.Http.Headers;
using System.Text;
using CallRouter.Messages;

namespace CallRouter.Tests.Infrastructure;

/// <summary>
/// The real RabbitMQ (RABBITMQ_HOST / RABBITMQ_PORT / RABBITMQ_MANAGEMENT_PORT, localhost defaults), with a virtual
/// host of its own per fixture so tests never see each other's queues. An unreachable broker fails the test.
/// </summary>
public sealed class TestBroker : IAsyncDisposable
{
    private readonly HttpClient _management;

    private TestBroker(BrokerOptions options, HttpClient management)
    {
        Options = options;
        _management = management;
    }

    public BrokerOptions Options { get; }

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

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _management.DeleteAsync($"vhosts/{Options.VirtualHost}");
        }
        catch (HttpRequestException)
        {
        }
        _management.Dispose();
    }
}
