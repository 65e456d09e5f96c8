using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CallRouter.Common;
using CallRouter.Messages;
using DotNet.Testcontainers.Containers;
using Testcontainers.RabbitMq;

namespace CallRouter.Tests.Infrastructure;

/// <summary>
/// A RabbitMQ of a test's own, in a container (Testcontainers) from the image infra/docker-engine.sh builds, for tests
/// that stop, kill or cut off a broker. Its AMQP port on loopback is picked free once and kept across restarts, so
/// clients find it again where they left it. A missing engine or image fails the test (run ./test.sh, which makes them).
/// </summary>
public sealed class BrokerContainer : IAsyncDisposable
{
    public const string User = "rabbitmq";
    public const string Password = "rabbitmq";

    static BrokerContainer()
    {
        // The Ryuk image cannot be pulled here (each test disposes its own containers), and clients reach the published
        // ports on loopback rather than the bridge's addresses.
        Environment.SetEnvironmentVariable("TESTCONTAINERS_RYUK_DISABLED", "true");
        Environment.SetEnvironmentVariable("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1");
    }

    private BrokerContainer(RabbitMqContainer container, int port)
    {
        Container = container;
        Port = port;
    }

    public static string Image => Environment.GetEnvironmentVariable("RABBITMQ_IMAGE") ?? "callrouter/rabbitmq:bookworm-2";

    public RabbitMqContainer Container { get; }

    /// <summary>The AMQP port on 127.0.0.1, the same after every restart.</summary>
    public int Port { get; }

    public BrokerOptions Options => new() { Host = "127.0.0.1", Port = Port, VirtualHost = "/", User = User, Password = Password, Hosts = "" };

    public static async Task<BrokerContainer> Start()
    {
        var port = FreeLoopbackPort();
        var container = new RabbitMqBuilder()
            .WithImage(Image)
            .WithUsername(User)
            .WithPassword(Password)
            .WithPortBinding(port, RabbitMqBuilder.RabbitMqPort)
            .Build();
        try
        {
            await container.StartAsync();
        }
        catch (Exception exception)
        {
            throw new InvalidOperationException($"Could not start a RabbitMQ container from {Image}; run infra/docker-engine.sh (or ./test.sh, which does)", exception);
        }
        return new BrokerContainer(container, port);
    }

    /// <summary>Stops the broker as an operator would (SIGTERM: it closes every connection and shuts down).</summary>
    public Task Stop() => Container.StopAsync();

    /// <summary>Starts it again (same container, its durable queues and exchanges kept) and returns once it takes connections.</summary>
    public async Task StartAgain()
    {
        await Container.StartAsync();
        await Eventually.True(() => Task.FromResult(Accepts()), TimeSpan.FromSeconds(60), "the restarted broker never took connections");
    }

    private bool Accepts()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, Port);
            // The port is published by Docker as soon as the container runs; the broker answers the AMQP header only once it listens.
            var stream = client.GetStream();
            stream.Write("AMQP\0\0\u0009\u0001"u8);
            stream.ReadTimeout = 2000;
            return stream.Read(new byte[8]) > 0;
        }
        catch (Exception exception) when (exception is SocketException or IOException)
        {
            return false;
        }
    }

    public static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Runs the docker client (kill, network disconnect ...) and fails with its output.</summary>
    public static async Task<string> Docker(params string[] arguments)
    {
        var start = new ProcessStartInfo("docker", arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"docker {string.Join(' ', arguments)} exited {process.ExitCode}: {await stderr}");
        return await stdout;
    }

    public ValueTask DisposeAsync() => Container.DisposeAsync();
}
