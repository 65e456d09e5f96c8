// A claimant for the call broadcast router, using RabbitMQ.Client and the README's wire contract only.
// Usage: dotnet run --project examples/csharp/Claimant -- NAME [CONTEXT,EXTENSION,PRIORITY]   (or APP_NAME / APP_TARGET)
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

static string Env(string name, string fallback) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : fallback;

var app = args.Length > 0 ? args[0] : Env("APP_NAME", "");
var targetText = args.Length > 1 ? args[1] : Env("APP_TARGET", "");
if (app.Length == 0)
{
    Console.Error.WriteLine("usage: Claimant NAME [CONTEXT,EXTENSION,PRIORITY]");
    return 2;
}
object? target = null;
if (targetText.Length > 0)
{
    var parts = targetText.Split(',');
    target = new { context = parts[0], extension = parts.ElementAtOrDefault(1) ?? "s", priority = int.Parse(parts.ElementAtOrDefault(2) ?? "1") };
}
var user = Env("RABBITMQ_USER", "guest");

var factory = new ConnectionFactory
{
    HostName = Env("RABBITMQ_HOST", "localhost"),
    Port = int.Parse(Env("RABBITMQ_PORT", "5672")),
    VirtualHost = Env("RABBITMQ_VHOST", "/"),
    UserName = user,
    Password = Env("RABBITMQ_PASSWORD", "guest"),
};
await using var connection = await factory.CreateConnectionAsync();
await using var channel = await connection.CreateChannelAsync();
// The exchanges belong to the router's side: an app only checks they exist (it may not declare them).
foreach (var exchange in new[] { "call.broadcasts", "call.claims", "app.heartbeats" })
    await channel.ExchangeDeclarePassiveAsync(exchange);
var queue = $"app.{app}";
await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
await channel.QueueBindAsync(queue, "call.broadcasts", app);

// Heartbeats go out on a channel of their own, so they never interleave with the claims published below.
await using var heartbeats = await connection.CreateChannelAsync();
Task Heartbeat(string? status = null) => heartbeats.BasicPublishAsync("app.heartbeats", "", false,
    new BasicProperties { ContentType = "application/json", UserId = user },
    JsonSerializer.SerializeToUtf8Bytes(status is null ? new { app } : (object)new { app, status })).AsTask();

// Direct reply-to: answers come back on this channel, matched to our claims by correlation_id.
var pending = new ConcurrentDictionary<string, JsonNode>();
var replies = new AsyncEventingBasicConsumer(channel);
replies.ReceivedAsync += (_, delivery) =>
{
    if (delivery.BasicProperties.CorrelationId is { } id && pending.TryRemove(id, out var broadcast))
    {
        var reply = JsonNode.Parse(delivery.Body.Span)!;
        Console.WriteLine((bool)reply["accepted"]!
            ? $"WON {reply["callId"]} channel={broadcast["channelId"]} caller={broadcast["callerNumber"]}"
            : $"LOST {reply["callId"]} reason={reply["reason"]} winner={reply["winner"]}");
    }
    return Task.CompletedTask;
};
await channel.BasicConsumeAsync("amq.rabbitmq.reply-to", autoAck: true, replies);

var broadcasts = new AsyncEventingBasicConsumer(channel);
broadcasts.ReceivedAsync += async (_, delivery) =>
{
    if (delivery.BasicProperties.Type != "CallBroadcast")
        return; // CallClaimed notices (notify=yes)
    var broadcast = JsonNode.Parse(delivery.Body.Span)!;
    var correlationId = Guid.NewGuid().ToString();
    pending[correlationId] = broadcast;
    var claim = new { callId = (string?)broadcast["callId"], app, target };
    await channel.BasicPublishAsync("call.claims", "", false, new BasicProperties
    {
        ReplyTo = "amq.rabbitmq.reply-to",
        CorrelationId = correlationId,
        ContentType = "application/json",
        UserId = user, // RabbitMQ checks it is the user we connected as
    }, JsonSerializer.SerializeToUtf8Bytes(claim));
};
await channel.BasicConsumeAsync(queue, autoAck: true, broadcasts);

using var stop = new CancellationTokenSource();
using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => { signal.Cancel = true; stop.Cancel(); });
using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, signal => { signal.Cancel = true; stop.Cancel(); });

Console.WriteLine($"{app}: listening on {queue}");
using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
try
{
    do
        await Heartbeat();
    while (await timer.WaitForNextTickAsync(stop.Token));
}
catch (OperationCanceledException)
{
}
await Heartbeat("stopping");
await connection.CloseAsync();
return 0;
