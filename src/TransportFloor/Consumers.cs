using System.Diagnostics;
using System.Text.Json;
using CallRouter.Common;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.TransportFloor;

/// <summary>A message of about a claim's size.</summary>
public sealed record Ping(Guid CallId, int N, string App, string Payload);

/// <summary>Its answer.</summary>
public sealed record Pong(Guid CallId, int N);

/// <summary>The consumers measured, each alone in a child process, and the load sent to them.</summary>
public static class Consumers
{
    public const int WarmupSeconds = 20;
    private const string Queue = "transport-floor";
    private const string Replies = "transport-floor-replies";

    /// <summary>MassTransit as the router uses it (plain JSON, prefetch 256, 64 at once), its envelope, and RabbitMQ.Client alone.</summary>
    public static readonly string[] Kinds = ["masstransit-plain-json", "masstransit-envelope", "rabbitmq-client"];

    public static async Task<double> Measure(string kind, BrokerOptions broker, int rate, int seconds)
    {
        using var child = Process.Start(new ProcessStartInfo("dotnet", [typeof(Consumers).Assembly.Location, "--consume", kind])
        {
            RedirectStandardOutput = true,
        })!;
        if (await child.StandardOutput.ReadLineAsync() != "ready")
            throw new InvalidOperationException($"the {kind} consumer did not start");
        try
        {
            await using var sender = await Sender.Start(broker, kind);
            await sender.Send(rate, WarmupSeconds);
            child.Refresh();
            var before = child.TotalProcessorTime;
            await sender.Send(rate, seconds);
            child.Refresh();
            return (child.TotalProcessorTime - before).TotalMilliseconds / (rate * seconds);
        }
        finally
        {
            child.Kill();
            await child.WaitForExitAsync();
        }
    }

    /// <summary>The child: consumes until killed; for 4 of every 5 messages it sends an answer.</summary>
    public static async Task Run(string kind, BrokerOptions broker)
    {
        if (kind == "rabbitmq-client")
        {
            await using var connection = await broker.Connect("transport floor consumer");
            await using var channel = await connection.CreateChannelAsync();
            await Declare(channel);
            await channel.BasicQosAsync(0, 256, false);
            var consumer = new AsyncEventingBasicConsumer(channel);
            var answer = new BasicProperties { ContentType = "application/json" };
            consumer.ReceivedAsync += async (_, delivery) =>
            {
                var ping = JsonSerializer.Deserialize<Ping>(delivery.Body.Span, JsonSerializerOptions.Web)!;
                if (ping.N != 0)
                    await channel.BasicPublishAsync("", Replies, false, answer, JsonSerializer.SerializeToUtf8Bytes(new Pong(ping.CallId, ping.N), JsonSerializerOptions.Web));
                await channel.BasicAckAsync(delivery.DeliveryTag, false);
            };
            await channel.BasicConsumeAsync(Queue, false, consumer);
            Console.WriteLine("ready");
            await Task.Delay(Timeout.Infinite);
        }

        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddMassTransit(x =>
        {
            x.AddConsumer<PingConsumer>();
            x.UsingRabbitMq((context, cfg) =>
            {
                Configure(cfg, broker, kind);
                cfg.ReceiveEndpoint(Queue, e =>
                {
                    e.ConfigureConsumeTopology = false;
                    e.PrefetchCount = 256;
                    e.ConcurrentMessageLimit = 64;
                    e.ConfigureConsumer<PingConsumer>(context);
                });
            });
        });
        using var host = builder.Build();
        await host.StartAsync();
        Console.WriteLine("ready");
        await host.WaitForShutdownAsync();
    }

    private static void Configure(IRabbitMqBusFactoryConfigurator cfg, BrokerOptions broker, string kind)
    {
        cfg.Host(broker.Host, (ushort)broker.Port, broker.VirtualHost, h =>
        {
            h.Username(broker.User);
            h.Password(broker.Password);
            h.PublisherConfirmation = false;
        });
        if (kind != "masstransit-envelope")
            cfg.UseRawJsonSerializer(RawSerializerOptions.AnyMessageType, isDefault: true);
    }

    private static async Task Declare(IChannel channel)
    {
        await channel.QueueDeclareAsync(Queue, durable: true, exclusive: false, autoDelete: false);
        await channel.QueueDeclareAsync(Replies, durable: true, exclusive: false, autoDelete: false);
    }

    private sealed class PingConsumer : IConsumer<Ping>
    {
        private static readonly Uri Answers = new($"queue:{Replies}");

        public async Task Consume(ConsumeContext<Ping> context)
        {
            if (context.Message.N == 0)
                return;
            var endpoint = await context.GetSendEndpoint(Answers);
            await endpoint.Send(new Pong(context.Message.CallId, context.Message.N));
        }
    }

    /// <summary>Sends calls at a fixed rate in the consumer's format and drains the answers (this process is not measured).</summary>
    private sealed class Sender : IAsyncDisposable
    {
        private readonly IConnection _connection;
        private readonly IChannel _channel;
        private readonly BasicProperties _properties;
        private long _answers;

        private Sender(IConnection connection, IChannel channel, BasicProperties properties) =>
            (_connection, _channel, _properties) = (connection, channel, properties);

        public static async Task<Sender> Start(BrokerOptions broker, string kind)
        {
            var connection = await broker.Connect("transport floor sender");
            var channel = await connection.CreateChannelAsync();
            await Declare(channel);
            await channel.QueuePurgeAsync(Queue);
            await channel.QueuePurgeAsync(Replies);
            // MassTransit's envelope is what a MassTransit sender writes; plain JSON names its type in a header, as our components do.
            var properties = new BasicProperties
            {
                ContentType = kind == "masstransit-envelope" ? "application/vnd.masstransit+json" : "application/json",
                Headers = new Dictionary<string, object?> { ["MT-MessageType"] = $"urn:message:{typeof(Ping).Namespace}:{nameof(Ping)}" },
            };
            var sender = new Sender(connection, channel, properties);
            var drain = new AsyncEventingBasicConsumer(channel);
            drain.ReceivedAsync += (_, _) =>
            {
                Interlocked.Increment(ref sender._answers);
                return Task.CompletedTask;
            };
            await channel.BasicConsumeAsync(Replies, autoAck: true, drain);
            return sender;
        }

        public async Task Send(int rate, int seconds)
        {
            var expected = Interlocked.Read(ref _answers) + 4L * rate * seconds;
            var payload = new string('x', 400);
            var clock = Stopwatch.StartNew();
            for (long call = 0, total = (long)rate * seconds; call < total; await Task.Delay(2))
                for (var due = Math.Min((long)(clock.Elapsed.TotalSeconds * rate), total); call < due; call++)
                {
                    var id = Guid.NewGuid();
                    for (var n = 0; n < 5; n++)
                        await _channel.BasicPublishAsync("", Queue, false, _properties, Body(new Ping(id, n, "sales", payload)));
                }
            while (Interlocked.Read(ref _answers) < expected)
            {
                if (clock.Elapsed > TimeSpan.FromSeconds(seconds + 30))
                    throw new TimeoutException($"{expected - Interlocked.Read(ref _answers)} answers did not come");
                await Task.Delay(20);
            }
        }

        private byte[] Body(Ping ping) => _properties.ContentType == "application/json"
            ? JsonSerializer.SerializeToUtf8Bytes(ping, JsonSerializerOptions.Web)
            : JsonSerializer.SerializeToUtf8Bytes(new
            {
                messageId = Guid.NewGuid(),
                messageType = new[] { $"urn:message:{typeof(Ping).Namespace}:{nameof(Ping)}" },
                message = ping,
            }, JsonSerializerOptions.Web);

        public async ValueTask DisposeAsync()
        {
            await _channel.CloseAsync();
            await _connection.CloseAsync();
        }
    }
}
