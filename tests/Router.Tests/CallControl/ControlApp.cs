using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using CallRouter.Common;
using CallRouter.Messages;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.Tests.CallControl;

/// <summary>One message a controlling app received from call.control.events: its AMQP type and body.</summary>
public sealed record ReceivedEvent(string Type, Guid CallId, string Json)
{
    public CallControlEvent Event => JsonSerializer.Deserialize<CallControlEvent>(Json, Wire.Json)!;
}

/// <summary>
/// A bus-only call-control app, as the README contract describes it (RabbitMQ.Client and plain JSON): heartbeats, claims
/// every broadcast with "control": true, hears its calls' events on its own queue and sends commands, one reply each.
/// </summary>
public sealed class ControlApp(BrokerOptions broker, string name) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<(ControlReply Reply, long At)>> _waiting = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<ClaimReply>> _claims = new();
    private readonly ConcurrentQueue<ReceivedEvent> _events = new();
    private readonly SemaphoreSlim _publishLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IConnection? _connection;
    private IChannel? _channel;
    private IChannel? _replies;
    private string _replyQueue = "";
    private Task _heartbeats = Task.CompletedTask;
    private volatile bool _heartbeating = true;

    public string Name { get; } = name;

    public bool AutoClaim { get; init; } = true;

    /// <summary>Claims with "allEvents": true (the noise too).</summary>
    public bool AllEvents { get; init; }

    public ConcurrentQueue<CallBroadcast> Broadcasts { get; } = new();

    public IReadOnlyList<ReceivedEvent> Events => [.. _events];

    public IReadOnlyList<ReceivedEvent> EventsOf(Guid callId) => [.. _events.Where(e => e.CallId == callId)];

    public async Task Start()
    {
        var factory = new ConnectionFactory
        {
            HostName = broker.Host, Port = broker.Port, VirtualHost = broker.VirtualHost, UserName = broker.User, Password = broker.Password,
            ClientProvidedName = $"control app {Name}", ConsumerDispatchConcurrency = 1,
        };
        _connection = await factory.CreateConnectionAsync();
        _channel = await _connection.CreateChannelAsync();
        var queue = Topology.AppQueue(Name);
        await _channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await _channel.QueueBindAsync(queue, Topology.BroadcastExchange, Name);
        await _channel.QueueBindAsync(queue, Topology.ControlEventExchange, Name);
        _replies = await _connection.CreateChannelAsync();
        _replyQueue = (await _replies.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        var replies = new AsyncEventingBasicConsumer(_replies);
        replies.ReceivedAsync += (_, d) => OnReply(d);
        await _replies.BasicConsumeAsync(_replyQueue, autoAck: true, replies);
        var messages = new AsyncEventingBasicConsumer(_channel);
        messages.ReceivedAsync += (_, d) => OnMessage(d);
        await _channel.BasicConsumeAsync(queue, autoAck: true, messages);

        await Heartbeat();
        _heartbeats = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
            while (await timer.WaitForNextTickAsync(_stop.Token))
                if (_heartbeating)
                    await Heartbeat();
        });
    }

    /// <summary>The app goes silent (as if hung), without saying it is stopping.</summary>
    public void StopHeartbeats() => _heartbeating = false;

    public Task Heartbeat(string? status = null) =>
        Publish(Topology.HeartbeatExchange, "", Wire.Serialize(new AppHeartbeat(Name, "test", status)), null);

    public async Task<ClaimReply> Claim(Guid callId)
    {
        var correlationId = Guid.NewGuid().ToString("N");
        var answer = new TaskCompletionSource<ClaimReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _claims[correlationId] = answer;
        await Publish(Topology.ClaimExchange, "", Wire.Serialize(new ClaimCall(callId, Name, Control: true, AllEvents: AllEvents)), correlationId);
        return await answer.Task.WaitAsync(TimeSpan.FromSeconds(15));
    }

    /// <summary>Sends a command on the call's route and waits for its one reply.</summary>
    public async Task<ControlReply> Command(string route, ControlCall command) => (await Timed(route, Wire.Serialize(command))).Reply;

    /// <summary>Any bytes as a command (for bad input), with the properties a test may change; waits for the reply.</summary>
    public async Task<(ControlReply Reply, TimeSpan RoundTrip)> Timed(string route, byte[] body, Action<BasicProperties>? customize = null, TimeSpan? timeout = null)
    {
        var correlationId = Guid.NewGuid().ToString("N");
        var answer = new TaskCompletionSource<(ControlReply, long)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[correlationId] = answer;
        var sent = Stopwatch.GetTimestamp();
        await Publish(Topology.ControlExchange, route, body, correlationId, customize);
        var (reply, at) = await answer.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(15));
        return (reply, Stopwatch.GetElapsedTime(sent, at));
    }

    /// <summary>Publishes a command and does not wait (for commands that get no reply, e.g. without reply_to).</summary>
    public Task Send(string route, byte[] body, Action<BasicProperties>? customize = null) =>
        Publish(Topology.ControlExchange, route, body, null, customize);

    /// <summary>Waits for the first event of the call (from <paramref name="after"/> on) that matches.</summary>
    public async Task<ReceivedEvent> WaitFor(Guid callId, string type, Func<ReceivedEvent, bool>? match = null, int after = 0, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (true)
        {
            var changed = _changed.Task;
            var found = EventsOf(callId).Skip(after).FirstOrDefault(e => e.Type == type && (match?.Invoke(e) ?? true));
            if (found is not null)
                return found;
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException($"{Name} never got {type} for call {callId}; got: {string.Join(", ", EventsOf(callId).Select(e => e.Type))}");
            await Task.WhenAny(changed, Task.Delay(left));
        }
    }

    public async Task<CallControlStarted> WaitStarted(Guid callId) =>
        JsonSerializer.Deserialize<CallControlStarted>((await WaitFor(callId, Topology.Types.CallControlStarted)).Json, Wire.Json)!;

    public async Task<CallControlEnded> WaitEnded(Guid callId) =>
        JsonSerializer.Deserialize<CallControlEnded>((await WaitFor(callId, Topology.Types.CallControlEnded)).Json, Wire.Json)!;

    public async Task<CallBroadcast> WaitBroadcast()
    {
        while (true)
        {
            var changed = _changed.Task;
            if (Broadcasts.TryDequeue(out var broadcast))
                return broadcast;
            if (await Task.WhenAny(changed, Task.Delay(TimeSpan.FromSeconds(15))) != changed)
                throw new TimeoutException($"{Name} got no broadcast");
        }
    }

    private async Task Publish(string exchange, string routingKey, byte[] body, string? correlationId, Action<BasicProperties>? customize = null)
    {
        var properties = new BasicProperties
        {
            ContentType = "application/json", ReplyTo = correlationId is null ? null : _replyQueue, CorrelationId = correlationId, UserId = broker.User,
        };
        customize?.Invoke(properties);
        await _publishLock.WaitAsync();
        try
        {
            await _channel!.BasicPublishAsync(exchange, routingKey, false, properties, body);
        }
        finally
        {
            _publishLock.Release();
        }
    }

    private Task OnReply(BasicDeliverEventArgs delivery)
    {
        var at = Stopwatch.GetTimestamp();
        var id = delivery.BasicProperties.CorrelationId ?? "";
        if (delivery.BasicProperties.Type == Topology.Types.ControlReply && _waiting.TryRemove(id, out var waiting))
            waiting.TrySetResult((JsonSerializer.Deserialize<ControlReply>(delivery.Body.Span, Wire.Json)!, at));
        else if (_claims.TryRemove(id, out var claim))
            claim.TrySetResult(JsonSerializer.Deserialize<ClaimReply>(delivery.Body.Span, Wire.Json)!);
        return Task.CompletedTask;
    }

    private async Task OnMessage(BasicDeliverEventArgs delivery)
    {
        var type = delivery.BasicProperties.Type ?? "";
        if (type == Topology.Types.CallBroadcast)
        {
            var broadcast = JsonSerializer.Deserialize<CallBroadcast>(delivery.Body.Span, Wire.Json)!;
            Broadcasts.Enqueue(broadcast);
            Pulse();
            if (AutoClaim)
                _ = Claim(broadcast.CallId);
            return;
        }
        if (type == Topology.Types.CallClaimed)
            return;
        using var json = JsonDocument.Parse(delivery.Body);
        var callId = json.RootElement.GetProperty("callId").GetGuid();
        _events.Enqueue(new ReceivedEvent(type, callId, System.Text.Encoding.UTF8.GetString(delivery.Body.Span)));
        Pulse();
        await Task.CompletedTask;
    }

    private void Pulse() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

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
            if (_channel is { IsOpen: true })
                await Heartbeat("stopping");
            await _connection.CloseAsync();
            _connection.Dispose();
        }
    }
}
