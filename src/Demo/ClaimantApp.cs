using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using CallRouter.Common;
using CallRouter.Messages;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.Demo;

/// <summary>
/// An app that takes part in broadcasts using only the documented wire contract (RabbitMQ.Client, plain JSON):
/// it heartbeats, consumes broadcasts from app.NAME, claims with reply_to + correlation_id and reads the answer.
/// Everything it publishes carries its RabbitMQ user in user_id; it needs no more rights than infra/add-app-user.sh gives.
/// </summary>
public sealed class ClaimantApp(BrokerOptions broker, string name) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<ClaimReply>> _waiting = new();
    private readonly CancellationTokenSource _stop = new();
    private IConnection? _connection;
    private IChannel? _channel;
    private IChannel? _replies;
    private readonly SemaphoreSlim _publishLock = new(1, 1);
    private string _replyQueue = "";
    private Task _heartbeats = Task.CompletedTask;

    public string Name { get; } = name;

    /// <summary>Claim every broadcast as soon as it arrives.</summary>
    public bool AutoClaim { get; init; } = true;

    /// <summary>
    /// Send each claim and go on to the next broadcast, matching the answer on the reply queue, instead of waiting for the
    /// answer in the broadcast handler. Waiting holds one of the 16 handlers per claim round trip, so the app takes at most
    /// 16 ÷ round trip broadcasts/s (under the benchmark's overload, broadcasts waited 250-520 ms inside the app). The
    /// benchmark sets it; the tests keep the waiting app, whose pace their load shapes were written for.
    /// </summary>
    public bool PipelineClaims { get; init; }

    /// <summary>Where claimed calls should continue (null: the adapter's default).</summary>
    public DialplanTarget? Target { get; init; }

    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    public ConcurrentQueue<CallBroadcast> Broadcasts { get; } = new();
    public ConcurrentQueue<CallClaimed> ClaimedNotices { get; } = new();
    public ConcurrentQueue<CallFailed> FailedNotices { get; } = new();
    public ConcurrentQueue<ClaimReply> Replies { get; } = new();

    /// <summary>Stopwatch timestamps per call: when the broadcast arrived and when the answer to our claim arrived.</summary>
    public ConcurrentDictionary<Guid, (long Offered, long Answered)> Timings { get; } = new();

    public event Action<CallBroadcast>? BroadcastReceived;

    public async Task Start(CancellationToken cancellationToken = default)
    {
        _connection = await broker.Connect($"app {Name}", dispatchConcurrency: 16, cancellationToken);
        // The exclusive reply queue is made again, under a new name, when the connection recovers (broker restart, another node).
        _connection.QueueNameChangedAfterRecoveryAsync += (_, e) =>
        {
            if (e.NameBefore == _replyQueue)
                _replyQueue = e.NameAfter;
            return Task.CompletedTask;
        };
        _channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);

        // The exchanges belong to the router's side (infra/broker-definitions.sh, router, adapter): an app only checks they exist.
        await _channel.ExchangeDeclarePassiveAsync(Topology.BroadcastExchange, cancellationToken);
        await _channel.ExchangeDeclarePassiveAsync(Topology.ClaimExchange, cancellationToken);
        await _channel.ExchangeDeclarePassiveAsync(Topology.HeartbeatExchange, cancellationToken);
        var queue = Topology.AppQueue(Name);
        // The same arguments as infra/add-app-user.sh (a quorum queue in a cluster), so declaring it again is harmless.
        await _channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, broker.DurableQueueArguments(), cancellationToken: cancellationToken);
        await _channel.QueueBindAsync(queue, Topology.BroadcastExchange, Name, cancellationToken: cancellationToken);
        // Replies are consumed on their own channel, so broadcast handlers waiting for answers never block them.
        _replies = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        _replyQueue = (await _replies.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken)).QueueName;
        var replies = new AsyncEventingBasicConsumer(_replies);
        replies.ReceivedAsync += (_, d) => OnReply(d);
        await _replies.BasicConsumeAsync(_replyQueue, autoAck: true, replies, cancellationToken);

        var broadcasts = new AsyncEventingBasicConsumer(_channel);
        broadcasts.ReceivedAsync += (_, d) => OnBroadcast(d);
        await _channel.BasicConsumeAsync(queue, autoAck: true, broadcasts, cancellationToken);

        await Heartbeat();
        _heartbeats = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(HeartbeatInterval);
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    await Heartbeat();
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    // The broker is away for a moment (restart, node loss): the next beat goes out once the connection recovers.
                }
            }
        });
    }

    public Task Heartbeat(string? status = null) =>
        Publish(Topology.HeartbeatExchange, Wire.Serialize(new AppHeartbeat(Name, Environment.ProcessId.ToString(), status)), null, Topology.Types.AppHeartbeat);

    /// <summary>Claims a call and waits for the router's answer (10 s unless <paramref name="timeout"/> says otherwise).</summary>
    public Task<ClaimReply> Claim(Guid callId, DialplanTarget? target = null, string? moveToApp = null, IReadOnlyList<string>? appArgs = null,
        TimeSpan? timeout = null) =>
        ClaimRaw(Wire.Serialize(new ClaimCall(callId, Name, target ?? Target, moveToApp, appArgs)), timeout);

    /// <summary>Publishes any bytes as a claim and waits for the answer (for malformed-input and forgery tests, which may change the properties).</summary>
    public async Task<ClaimReply> ClaimRaw(byte[] body, TimeSpan? timeout = null, Action<BasicProperties>? properties = null)
    {
        var correlationId = Guid.NewGuid().ToString("N");
        var answer = new TaskCompletionSource<ClaimReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[correlationId] = answer;
        await Publish(Topology.ClaimExchange, body, correlationId, null, properties);
        return await answer.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(10));
    }

    private async Task Publish(string exchange, byte[] body, string? correlationId, string? type, Action<BasicProperties>? customize = null)
    {
        var properties = new BasicProperties
        {
            ContentType = "application/json", ReplyTo = correlationId is null ? null : _replyQueue, CorrelationId = correlationId, Type = type,
            UserId = broker.User,
        };
        customize?.Invoke(properties);
        await _publishLock.WaitAsync();
        try
        {
            await _channel!.BasicPublishAsync(exchange, "", false, properties, body);
        }
        finally
        {
            _publishLock.Release();
        }
    }

    private Task OnReply(BasicDeliverEventArgs delivery)
    {
        var reply = JsonSerializer.Deserialize<ClaimReply>(delivery.Body.Span, Wire.Json)!;
        Replies.Enqueue(reply);
        if (reply.CallId is { } callId)
            Timings.AddOrUpdate(callId, _ => (0, Stopwatch.GetTimestamp()), (_, t) => (t.Offered, Stopwatch.GetTimestamp()));
        if (delivery.BasicProperties.CorrelationId is { } id && _waiting.TryRemove(id, out var waiting))
            waiting.TrySetResult(reply);
        return Task.CompletedTask;
    }

    private Task OnBroadcast(BasicDeliverEventArgs delivery)
    {
        if (delivery.BasicProperties.Type == Topology.Types.CallClaimed)
        {
            ClaimedNotices.Enqueue(JsonSerializer.Deserialize<CallClaimed>(delivery.Body.Span, Wire.Json)!);
            return Task.CompletedTask;
        }
        if (delivery.BasicProperties.Type == Topology.Types.CallFailed)
        {
            FailedNotices.Enqueue(JsonSerializer.Deserialize<CallFailed>(delivery.Body.Span, Wire.Json)!);
            return Task.CompletedTask;
        }
        var broadcast = JsonSerializer.Deserialize<CallBroadcast>(delivery.Body.Span, Wire.Json)!;
        Timings[broadcast.CallId] = (Stopwatch.GetTimestamp(), 0);
        Broadcasts.Enqueue(broadcast);
        BroadcastReceived?.Invoke(broadcast);
        if (!AutoClaim)
            return Task.CompletedTask;
        var answer = Claim(broadcast.CallId);
        if (!PipelineClaims)
            return answer;
        // Sent, not waited for: the answer comes on the reply queue (OnReply), and this handler takes the next broadcast.
        _ = answer.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return Task.CompletedTask;
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
        if (_channel is { IsOpen: true })
            await Heartbeat("stopping");
        if (_connection is not null)
        {
            await _connection.CloseAsync();
            _connection.Dispose();
        }
        _stop.Dispose();
    }
}
