using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using CallRouter.Common;
using CallRouter.Messages;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Sim = CallRouter.AriSimulator;

namespace CallRouter.Benchmark;

/// <summary>
/// The controlled-call run: a bus-only bridge-dial app (create callee, bridge, add both, dial, answer on ANSWER, hang up
/// the callee, continue the caller) at a fixed rate. Measures each command's round trip (app → adapter → ARI → reply),
/// the whole flow's calls/s, and what is left on the Asterisk afterwards (must be nothing).
/// </summary>
internal sealed class ControlledRun(BrokerOptions broker, Sim.AriSimulator ari) : IAsyncDisposable
{
    public const string App = "bench-dialer";

    public sealed record Result(int Offered, int Completed, double CallsPerSecond, List<double> RoundTripsMs, int LeftChannels, int LeftBridges, int Failures);

    private sealed class Flow(string route, string caller)
    {
        public string Route { get; } = route;
        public string Caller { get; } = caller;
        public volatile string? Callee;
        public TaskCompletionSource Answered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly ConcurrentDictionary<string, TaskCompletionSource<JsonNode>> _waiting = new();
    private readonly ConcurrentDictionary<string, Flow> _flows = new();
    private readonly ConcurrentBag<double> _roundTrips = [];
    private readonly ConcurrentDictionary<string, ConcurrentBag<double>> _byCommand = new();
    private readonly SemaphoreSlim _publishLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private int _failures;
    private IConnection? _connection;
    private IChannel? _channel;
    private string _replyQueue = "";
    private Task _heartbeats = Task.CompletedTask;

    public async Task<Result> Measure(int rate, int seconds)
    {
        await Start();
        var count = rate * seconds;
        var callers = new List<Sim.SimChannel>(count);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var due = TimeSpan.FromSeconds((double)i / rate);
            if (due - clock.Elapsed is var pause && pause > TimeSpan.FromMilliseconds(1))
                await Task.Delay(pause);
            callers.Add(ari.Originate("call-router", ["timeout=2000", $"filter=^{App}$"]));
        }
        await Task.WhenAll(callers.Select(c => c.Destroyed)).WaitAsync(TimeSpan.FromSeconds(120));
        var elapsed = clock.Elapsed.TotalSeconds;
        var completed = callers.Count(c => c.ContinuedTo is not null);
        var left = ari.LiveChannels.Count;
        var bridges = ari.Bridges.Count;
        foreach (var (command, trips) in _byCommand.OrderBy(c => c.Key))
        {
            var sorted = trips.Order().ToList();
            Console.WriteLine($"  {command}: p50 {sorted[sorted.Count / 2]:F2} ms, p99 {sorted[(int)(sorted.Count * 0.99)]:F2} ms, max {sorted[^1]:F2} ms");
        }
        return new Result(count, completed, completed / elapsed, [.. _roundTrips.Order()], left, bridges, _failures);
    }

    private async Task Start()
    {
        _connection = await broker.Connect($"app {App}", dispatchConcurrency: 8);
        _channel = await _connection.CreateChannelAsync();
        var queue = Topology.AppQueue(App);
        await _channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await _channel.QueueBindAsync(queue, Topology.BroadcastExchange, App);
        await _channel.QueueBindAsync(queue, Topology.ControlEventExchange, App);
        _replyQueue = (await _channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        var replies = new AsyncEventingBasicConsumer(_channel);
        replies.ReceivedAsync += (_, d) => OnReply(d);
        await _channel.BasicConsumeAsync(_replyQueue, autoAck: true, replies);
        var messages = new AsyncEventingBasicConsumer(_channel);
        messages.ReceivedAsync += (_, d) => OnMessage(d);
        await _channel.BasicConsumeAsync(queue, autoAck: true, messages);
        await Heartbeat();
        _heartbeats = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
            while (await timer.WaitForNextTickAsync(_stop.Token))
                await Heartbeat();
        });
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // the adapter hears the first heartbeat
    }

    private Task Heartbeat(string? status = null) =>
        Publish(Topology.HeartbeatExchange, "", status is null ? new JsonObject { ["app"] = App } : new JsonObject { ["app"] = App, ["status"] = status }, null);

    private async Task Publish(string exchange, string routingKey, JsonObject body, string? correlationId)
    {
        var properties = new BasicProperties
        {
            ContentType = "application/json", UserId = broker.User, CorrelationId = correlationId, ReplyTo = correlationId is null ? null : _replyQueue,
        };
        await _publishLock.WaitAsync();
        try
        {
            await _channel!.BasicPublishAsync(exchange, routingKey, false, properties, JsonSerializer.SerializeToUtf8Bytes(body));
        }
        finally
        {
            _publishLock.Release();
        }
    }

    private async Task<JsonNode> Command(string callId, Flow flow, JsonObject fields)
    {
        var correlationId = Guid.NewGuid().ToString("N");
        var reply = new TaskCompletionSource<JsonNode>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[correlationId] = reply;
        fields["callId"] = callId;
        var sent = Stopwatch.GetTimestamp();
        await Publish(Topology.ControlExchange, flow.Route, fields, correlationId);
        var answer = await reply.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var roundTrip = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
        _roundTrips.Add(roundTrip);
        _byCommand.GetOrAdd((string)fields["command"]!, _ => []).Add(roundTrip);
        if (!(bool)answer["ok"]!)
            throw new InvalidOperationException($"{fields["command"]}: {answer["reason"]} {answer["detail"]}");
        return answer;
    }

    private async Task Drive(string callId, Flow flow)
    {
        try
        {
            flow.Callee = (string)(await Command(callId, flow, new JsonObject { ["command"] = "createChannel", ["endpoint"] = "Local/s@callee/n" }))["channelId"]!;
            var bridge = (string)(await Command(callId, flow, new JsonObject { ["command"] = "createBridge" }))["bridgeId"]!;
            await Command(callId, flow, new JsonObject { ["command"] = "addChannel", ["bridgeId"] = bridge, ["channelId"] = flow.Caller });
            await Command(callId, flow, new JsonObject { ["command"] = "addChannel", ["bridgeId"] = bridge, ["channelId"] = flow.Callee });
            await Command(callId, flow, new JsonObject { ["command"] = "dial", ["channelId"] = flow.Callee });
            await flow.Answered.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await Command(callId, flow, new JsonObject { ["command"] = "answer" });
            await Command(callId, flow, new JsonObject { ["command"] = "hangup", ["channelId"] = flow.Callee });
            await Command(callId, flow, new JsonObject { ["command"] = "continue" });
        }
        catch (Exception exception) when (exception is InvalidOperationException or TimeoutException)
        {
            Interlocked.Increment(ref _failures);
            Console.Error.WriteLine($"controlled call {callId}: {exception.Message}");
        }
    }

    private Task OnReply(BasicDeliverEventArgs delivery)
    {
        if (delivery.BasicProperties.CorrelationId is { } id && _waiting.TryRemove(id, out var reply))
            reply.TrySetResult(JsonNode.Parse(delivery.Body.Span)!);
        return Task.CompletedTask;
    }

    private async Task OnMessage(BasicDeliverEventArgs delivery)
    {
        var message = JsonNode.Parse(delivery.Body.Span)!;
        var callId = (string)message["callId"]!;
        switch (delivery.BasicProperties.Type)
        {
            case Topology.Types.CallBroadcast:
                await Publish(Topology.ClaimExchange, "", new JsonObject { ["callId"] = callId, ["app"] = App, ["control"] = true }, Guid.NewGuid().ToString("N"));
                break;
            case Topology.Types.CallControlStarted:
                var flow = _flows[callId] = new Flow((string)message["route"]!, (string)message["channelId"]!);
                _ = Task.Run(() => Drive(callId, flow));
                break;
            case "Dial" when _flows.TryGetValue(callId, out var dialing) && (string?)message["dialStatus"] == "ANSWER":
                dialing.Answered.TrySetResult();
                break;
            case Topology.Types.CallControlEnded when _flows.TryRemove(callId, out var ended):
                ended.Ended.TrySetResult();
                break;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _heartbeats;
        }
        catch (OperationCanceledException)
        {
        }
        if (_connection is not null)
        {
            await Heartbeat("stopping");
            await _connection.CloseAsync();
            _connection.Dispose();
        }
    }
}
