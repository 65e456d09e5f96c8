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
    private readonly ConcurrentDictionary<string, WaitingClaim> _waiting = new();
    private readonly CancellationTokenSource _stop = new();
    private IConnection? _connection;
    private IChannel? _channel;
    private IChannel? _replies;
    private IChannel? _beats;
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

    /// <summary>A claim sent and not answered yet: sent again if the app has to reconnect.</summary>
    private sealed record WaitingClaim(TaskCompletionSource<ClaimReply> Answer, byte[] Body, Action<BasicProperties>? Properties);

    /// <summary>How long a heartbeat may wait for the broker's confirm before the app reconnects (quorum queues only).</summary>
    public static readonly TimeSpan ConfirmTimeout = TimeSpan.FromSeconds(5);

    public async Task Start(CancellationToken cancellationToken = default)
    {
        await Connect(cancellationToken);
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
                catch (TimeoutException) when (broker.UsesQuorumQueues && _connection is { IsOpen: true })
                {
                    await Reconnect();
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    // The broker is away for a moment (restart, node loss): the next beat goes out once the connection recovers.
                }
            }
        });
    }

    private async Task Connect(CancellationToken cancellationToken)
    {
        var connection = await broker.Connect($"app {Name}", dispatchConcurrency: 16, cancellationToken);
        // The exclusive reply queue is made again, under a new name, when the connection recovers (broker restart, another node).
        connection.QueueNameChangedAfterRecoveryAsync += (_, e) =>
        {
            if (e.NameBefore == _replyQueue)
                _replyQueue = e.NameAfter;
            return Task.CompletedTask;
        };
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);

        // The exchanges belong to the router's side (infra/broker-definitions.sh, router, adapter): an app only checks they exist.
        await channel.ExchangeDeclarePassiveAsync(Topology.BroadcastExchange, cancellationToken);
        await channel.ExchangeDeclarePassiveAsync(Topology.ClaimExchange, cancellationToken);
        await channel.ExchangeDeclarePassiveAsync(Topology.HeartbeatExchange, cancellationToken);
        var queue = Topology.AppQueue(Name);
        // The same arguments as infra/add-app-user.sh (a quorum queue in a cluster), so declaring it again is harmless.
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, broker.DurableQueueArguments(), cancellationToken: cancellationToken);
        await channel.QueueBindAsync(queue, Topology.BroadcastExchange, Name, cancellationToken: cancellationToken);
        // Replies are consumed on their own channel, so broadcast handlers waiting for answers never block them.
        var replies = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var replyQueue = (await replies.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken)).QueueName;
        var replyConsumer = new AsyncEventingBasicConsumer(replies);
        replyConsumer.ReceivedAsync += (_, d) => OnReply(d);
        await replies.BasicConsumeAsync(replyQueue, autoAck: true, replyConsumer, cancellationToken);
        // Heartbeats with publisher confirms: the app's way to notice a connection the broker stopped reading.
        var beats = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
            cancellationToken);

        await _publishLock.WaitAsync(cancellationToken);
        try
        {
            (_connection, _channel, _replies, _beats, _replyQueue) = (connection, channel, replies, beats, replyQueue);
        }
        finally
        {
            _publishLock.Release();
        }
        var broadcasts = new AsyncEventingBasicConsumer(channel);
        broadcasts.ReceivedAsync += (_, d) => OnBroadcast(d);
        await channel.BasicConsumeAsync(queue, autoAck: true, broadcasts, cancellationToken);
    }

    /// <summary>
    /// A heartbeat went unconfirmed on an open connection. After a partition, RabbitMQ 3.x can leave a channel whose
    /// publishes to a quorum queue (claims, to the router's) are never enqueued (rabbitmq-server#14589, fixed in 4.2);
    /// the channel then stays in flow control and the node stops reading the whole connection, heartbeats included,
    /// so the adapters would soon take the app for dead. A new connection starts afresh; the claims still waiting for
    /// an answer are sent again on it (their reply queue went with the old one), and the router answers a claim sent
    /// again as it answered the first.
    /// </summary>
    private async Task Reconnect()
    {
        var stale = _connection;
        try
        {
            await Connect(_stop.Token);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return; // no node takes connections right now: the next unconfirmed heartbeat tries again
        }
        if (stale is not null)
        {
            try
            {
                await stale.CloseAsync(Constants.ReplySuccess, "heartbeats not confirmed: reconnecting", TimeSpan.FromSeconds(2), abort: true);
            }
            catch (Exception)
            {
                // it was stalled anyway
            }
            stale.Dispose();
        }
        foreach (var (correlationId, claim) in _waiting)
            await Publish(Topology.ClaimExchange, claim.Body, correlationId, null, claim.Properties);
    }

    /// <summary>One heartbeat, confirmed by the broker within <see cref="ConfirmTimeout"/> (else a <see cref="TimeoutException"/>).</summary>
    public async Task Heartbeat(string? status = null)
    {
        var properties = new BasicProperties { ContentType = "application/json", Type = Topology.Types.AppHeartbeat, UserId = broker.User };
        var body = Wire.Serialize(new AppHeartbeat(Name, Environment.ProcessId.ToString(), status));
        using var deadline = new CancellationTokenSource(ConfirmTimeout);
        try
        {
            await _beats!.BasicPublishAsync(Topology.HeartbeatExchange, "", false, properties, body, deadline.Token).AsTask().WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"RabbitMQ did not confirm a heartbeat within {ConfirmTimeout.TotalSeconds} s");
        }
    }

    /// <summary>
    /// How long a claim waits for its answer before it is sent again (same correlation id; the first answer counts). In a
    /// cluster a claim taken by a router whose connection was then lost can come back late or not at all.
    /// </summary>
    public TimeSpan ClaimAgainAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Claims a call and waits for the router's answer (10 s unless <paramref name="timeout"/> says otherwise).</summary>
    public Task<ClaimReply> Claim(Guid callId, DialplanTarget? target = null, string? moveToApp = null, IReadOnlyList<string>? appArgs = null,
        TimeSpan? timeout = null) =>
        ClaimRaw(Wire.Serialize(new ClaimCall(callId, Name, target ?? Target, moveToApp, appArgs)), timeout);

    /// <summary>Publishes any bytes as a claim and waits for the answer (for malformed-input and forgery tests, which may change the properties).</summary>
    public async Task<ClaimReply> ClaimRaw(byte[] body, TimeSpan? timeout = null, Action<BasicProperties>? properties = null)
    {
        var correlationId = Guid.NewGuid().ToString("N");
        var answer = new TaskCompletionSource<ClaimReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[correlationId] = new WaitingClaim(answer, body, properties);
        var giveUp = Stopwatch.GetTimestamp() + (long)((timeout ?? TimeSpan.FromSeconds(10)).TotalSeconds * Stopwatch.Frequency);
        try
        {
            while (true)
            {
                await Publish(Topology.ClaimExchange, body, correlationId, null, properties);
                var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), giveUp);
                if (left <= ClaimAgainAfter)
                    return await answer.Task.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero);
                try
                {
                    return await answer.Task.WaitAsync(ClaimAgainAfter);
                }
                catch (TimeoutException)
                {
                    // Not answered yet: the same claim again (a claim sent again is answered as the first was).
                }
            }
        }
        finally
        {
            _waiting.TryRemove(correlationId, out _);
        }
    }

    private async Task Publish(string exchange, byte[] body, string? correlationId, string? type, Action<BasicProperties>? customize = null)
    {
        await _publishLock.WaitAsync();
        try
        {
            // The reply queue is read under the lock that Connect swaps it under: a claim sent as the app reconnects names
            // the reply queue of the connection it goes out on.
            var properties = new BasicProperties
            {
                ContentType = "application/json", ReplyTo = correlationId is null ? null : _replyQueue, CorrelationId = correlationId, Type = type,
                UserId = broker.User,
            };
            customize?.Invoke(properties);
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
            waiting.Answer.TrySetResult(reply);
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
        if (_beats is { IsOpen: true })
        {
            try
            {
                await Heartbeat("stopping");
            }
            catch (TimeoutException)
            {
                // the adapters will notice the missing heartbeats instead
            }
        }
        if (_connection is not null)
        {
            await _connection.CloseAsync();
            _connection.Dispose();
        }
        _stop.Dispose();
    }
}
