// Bridge-dial over the bus: for each call it wins, creates the callee, puts caller and callee in a mixing bridge, dials
// the callee, answers the caller when the callee is up, and hangs up the other side when either leaves. It uses
// RabbitMQ.Client and the README's "Call control" contract only, and never talks to Asterisk.
// Usage: dotnet run --project examples/csharp/BridgeDial -- NAME ENDPOINT    e.g. dialer Local/s@callee/n
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

static string Env(string name, string fallback) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : fallback;

var app = args.Length > 0 ? args[0] : Env("APP_NAME", "");
var endpoint = args.Length > 1 ? args[1] : Env("CALLEE_ENDPOINT", "");
if (app.Length == 0 || endpoint.Length == 0)
{
    Console.Error.WriteLine("usage: BridgeDial NAME ENDPOINT");
    return 2;
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
// The exchanges are provisioned by the router's side; an app only checks they exist.
foreach (var exchange in new[] { "call.broadcasts", "call.claims", "app.heartbeats", "call.control", "call.control.events" })
    await channel.ExchangeDeclarePassiveAsync(exchange);
var queue = $"app.{app}";
await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
await channel.QueueBindAsync(queue, "call.broadcasts", app);
await channel.QueueBindAsync(queue, "call.control.events", app);

var publishLock = new SemaphoreSlim(1, 1);
async Task Publish(string exchange, string routingKey, JsonObject message, string? correlationId = null)
{
    var properties = new BasicProperties
    {
        ContentType = "application/json",
        UserId = user, // RabbitMQ checks it is the user we connected as; the adapter checks that user owns the app
        ReplyTo = correlationId is null ? null : "amq.rabbitmq.reply-to",
        CorrelationId = correlationId,
    };
    await publishLock.WaitAsync();
    try
    {
        await channel.BasicPublishAsync(exchange, routingKey, false, properties, JsonSerializer.SerializeToUtf8Bytes(message));
    }
    finally
    {
        publishLock.Release();
    }
}

// Commands: one reply each, matched by correlation_id on direct reply-to.
var waiting = new ConcurrentDictionary<string, TaskCompletionSource<JsonNode>>();
var calls = new ConcurrentDictionary<string, Call>();
async Task<JsonNode> Command(Call call, JsonObject fields)
{
    var correlationId = Guid.NewGuid().ToString();
    var reply = new TaskCompletionSource<JsonNode>(TaskCreationOptions.RunContinuationsAsynchronously);
    waiting[correlationId] = reply;
    fields["callId"] = call.Id;
    await Publish("call.control", call.Route, fields, correlationId);
    var answer = await reply.Task.WaitAsync(TimeSpan.FromSeconds(10));
    if (!(bool)answer["ok"]!)
        throw new InvalidOperationException($"{fields["command"]}: {answer["reason"]} {answer["detail"]}");
    return answer;
}

// Runs a step of a call off the consumer (whose replies it awaits); a failed step gives the call up.
void Run(Call call, Func<Task> step) => _ = Task.Run(async () =>
{
    try
    {
        await step();
    }
    catch (Exception exception) when (exception is InvalidOperationException or TimeoutException)
    {
        Console.WriteLine($"FAILED {call.Id} {exception.Message}");
        try
        {
            await Command(call, new JsonObject { ["command"] = "hangup", ["channelId"] = call.Caller });
        }
        catch (Exception again) when (again is InvalidOperationException or TimeoutException)
        {
        }
    }
});

var replies = new AsyncEventingBasicConsumer(channel);
replies.ReceivedAsync += (_, delivery) =>
{
    if (delivery.BasicProperties.CorrelationId is { } id && waiting.TryRemove(id, out var reply))
        reply.TrySetResult(JsonNode.Parse(delivery.Body.Span)!);
    return Task.CompletedTask;
};
await channel.BasicConsumeAsync("amq.rabbitmq.reply-to", autoAck: true, replies);

var messages = new AsyncEventingBasicConsumer(channel);
messages.ReceivedAsync += async (_, delivery) =>
{
    var message = JsonNode.Parse(delivery.Body.Span)!.AsObject();
    var callId = (string)message["callId"]!;
    switch (delivery.BasicProperties.Type)
    {
        case "CallBroadcast":
            await Publish("call.claims", "", new JsonObject { ["callId"] = callId, ["app"] = app, ["control"] = true }, Guid.NewGuid().ToString());
            break;
        case "CallControlStarted":
            var call = calls[callId] = new Call(callId, (string)message["route"]!, (string)message["channelId"]!);
            Run(call, async () =>
            {
                call.Callee = (string)(await Command(call, new JsonObject { ["command"] = "createChannel", ["endpoint"] = endpoint }))["channelId"]!;
                var bridge = (string)(await Command(call, new JsonObject { ["command"] = "createBridge" }))["bridgeId"]!;
                await Command(call, new JsonObject { ["command"] = "addChannel", ["bridgeId"] = bridge, ["channelId"] = call.Caller });
                await Command(call, new JsonObject { ["command"] = "addChannel", ["bridgeId"] = bridge, ["channelId"] = call.Callee });
                await Command(call, new JsonObject { ["command"] = "dial", ["channelId"] = call.Callee, ["timeout"] = 30 });
            });
            break;
        case "CallControlEnded":
            calls.TryRemove(callId, out Call? _);
            Console.WriteLine($"ENDED {callId} reason={message["reason"]}");
            break;
        case "Dial" when calls.TryGetValue(callId, out Call? dialing) && (string?)message["channelId"] == dialing.Callee:
            var status = (string?)message["dialStatus"];
            if (status == "ANSWER")
                Run(dialing, async () =>
                {
                    await Command(dialing, new JsonObject { ["command"] = "answer", ["channelId"] = dialing.Caller });
                    Console.WriteLine($"BRIDGED {callId} caller={dialing.Caller} callee={dialing.Callee}");
                });
            else if (status is not ("" or "RINGING" or "PROGRESS"))
                Run(dialing, () => throw new InvalidOperationException($"NO-ANSWER {status}"));
            break;
        case "ChannelHangupRequest" when calls.TryGetValue(callId, out Call? leaving) && (string?)message["channelId"] == leaving.Callee:
            // The callee left: so does the caller.
            Run(leaving, () => Command(leaving, new JsonObject { ["command"] = "hangup", ["channelId"] = leaving.Caller }));
            break;
    }
};
await channel.BasicConsumeAsync(queue, autoAck: true, messages);

using var stop = new CancellationTokenSource();
using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => { signal.Cancel = true; stop.Cancel(); });
using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, signal => { signal.Cancel = true; stop.Cancel(); });

Task Heartbeat(string? status = null) => Publish("app.heartbeats", "", status is null ? new JsonObject { ["app"] = app } : new JsonObject { ["app"] = app, ["status"] = status });
Console.WriteLine($"{app}: bridge-dial to {endpoint}, listening on {queue}");
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

/// <summary>One call this app controls.</summary>
internal sealed class Call(string id, string route, string caller)
{
    public string Id { get; } = id;
    public string Route { get; } = route;
    public string Caller { get; } = caller;
    public volatile string? Callee;
}
