using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using CallRouter.Common;
using CallRouter.Messages;
using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Polly;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.Router.Postgres;

/// <summary>
/// Writes CallRecord messages from the durable cdr.writer queue into call_records, a batch per transaction, and
/// acknowledges them only once committed. While PostgreSQL is away the batch is retried (the messages stay
/// unacknowledged, the rest wait in the queue), so nothing is lost; routing does not wait for it. A record that
/// arrives twice is written once (ON CONFLICT on call_id; a later copy only fills in a claim count the row lacks or raises
/// it, as counts only grow: the adapter sends a call's record when its channel ends and again when the router's claim tally
/// comes later or counts more). A record that cannot be read or stored is parked
/// in cdr.writer_error with x-error saying why. Every router with PostgreSQL runs one; they share the queue.
/// </summary>
public sealed class CdrWriter(
    IOptions<BrokerOptions> broker, IOptions<PostgresOptions> options, NpgsqlDataSource database, DatabaseSchema schema, ILogger<CdrWriter> logger)
    : BackgroundService
{
    private const string Insert = """
        INSERT INTO call_records (call_id, node, channel_id, channel_name, caller_number, caller_name, extension, context, args,
            channel_created_at, broadcast_at, deadline, audience, audience_size, claims, winner, claimed_at, claim_latency_ms,
            handed_over_at, decision_latency_ms, status, reason, target, ended_at, duration_s, hangup_cause, hangup_cause_text,
            controlled, answered_at, control_ending, parent_call_id)
        VALUES (@CallId, @Node, @ChannelId, @ChannelName, @CallerNumber, @CallerName, @Extension, @Context, @Args,
            @ChannelCreatedAt, @BroadcastAt, @Deadline, @Audience, @AudienceSize, @Claims, @Winner, @ClaimedAt, @ClaimLatencyMs,
            @HandedOverAt, @DecisionLatencyMs, @Status, @Reason, @Target, @EndedAt, @DurationS, @HangupCause, @HangupCauseText,
            @Controlled, @AnsweredAt, @ControlEnding, @ParentCallId)
        ON CONFLICT (call_id) DO UPDATE SET claims = EXCLUDED.claims
            WHERE EXCLUDED.claims > call_records.claims OR call_records.claims IS NULL AND EXCLUDED.claims IS NOT NULL
        """;

    private static readonly HashSet<string> Statuses = [CallStatus.Success, CallStatus.Timeout, CallStatus.Failed, CallStatus.Abandoned];

    private static readonly ResiliencePropertyKey<int> BatchCount = new("cdr-batch-count");

    // "cdr-write": PostgreSQL away (or its schema not in place yet): the batch stays unacknowledged and is tried again,
    // 250 ms longer each time up to 2 s, for as long as it takes; the queue holds the rest. Bad data is no failure here.
    private readonly ResiliencePipeline _writeRetry = RetryForever.Pipeline("cdr-write", TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(2),
        exception => exception is NpgsqlException or TimeoutException or InvalidOperationException,
        args => logger.LogWarning("CDR write of {Count} records failed (attempt {Attempt}), retrying in {Wait} ms: {Error}",
            args.Context.Properties.GetValue(BatchCount, 0), args.AttemptNumber + 1, args.RetryDelay.TotalMilliseconds, args.Outcome.Exception?.Message));

    // "cdr-broker-connect": the broker may start after us: 1 s longer each time up to 5 s, until it answers.
    private readonly ResiliencePipeline _connectRetry = RetryForever.Pipeline("cdr-broker-connect", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5),
        exception => exception is not OperationCanceledException,
        args => logger.LogWarning("CDR writer cannot reach the broker (attempt {Attempt}): {Error}", args.AttemptNumber + 1, args.Outcome.Exception?.Message));

    private readonly Channel<Delivery> _inbox = Channel.CreateUnbounded<Delivery>(new UnboundedChannelOptions { SingleReader = true });

    private sealed record Delivery(ulong Tag, byte[] Body, IReadOnlyBasicProperties Properties, IChannel Channel);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var connection = await Connect(stoppingToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
        await DeclareTopology(channel, broker.Value, stoppingToken);
        await channel.BasicQosAsync(0, (ushort)Math.Min(ushort.MaxValue, options.Value.CdrBatchSize * 2), false, stoppingToken);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (sender, d) =>
            _inbox.Writer.WriteAsync(new Delivery(d.DeliveryTag, d.Body.ToArray(), d.BasicProperties, ((AsyncEventingBasicConsumer)sender).Channel)).AsTask();
        await channel.BasicConsumeAsync(Topology.RecordQueue, autoAck: false, consumer, stoppingToken);

        var batch = new List<Delivery>();
        while (await _inbox.Reader.WaitToReadAsync(stoppingToken))
        {
            while (batch.Count < options.Value.CdrBatchSize && _inbox.Reader.TryRead(out var delivery))
                batch.Add(delivery);
            await WriteBatch(batch, stoppingToken);
            batch.Clear();
        }
    }

    /// <summary>The record exchange, the writers' queue and its error queue (the adapter declares the same).</summary>
    public static async Task DeclareTopology(IChannel channel, BrokerOptions broker, CancellationToken cancellationToken)
    {
        var durable = broker.DurableQueueArguments();
        await channel.ExchangeDeclareAsync(Topology.RecordExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Topology.RecordQueue, durable: true, exclusive: false, autoDelete: false, durable, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(Topology.RecordQueue, Topology.RecordExchange, "", cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Topology.RecordErrorQueue, durable: true, exclusive: false, autoDelete: false, durable, cancellationToken: cancellationToken);
    }

    private async Task WriteBatch(List<Delivery> batch, CancellationToken cancellationToken)
    {
        var rows = new List<(Delivery Delivery, object Row)>();
        foreach (var delivery in batch)
        {
            var (row, error) = Read(delivery.Body);
            if (row is null)
                await Park(delivery, error!, cancellationToken);
            else
                rows.Add((delivery, row));
        }
        if (rows.Count == 0)
            return;

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(BatchCount, rows.Count);
        try
        {
            if (!await _writeRetry.ExecuteAsync(async attempt => await Store(rows, attempt.CancellationToken), context))
                return;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
        foreach (var (delivery, _) in rows)
            await Ack(delivery, cancellationToken);
    }

    /// <summary>One attempt at a batch: false when its one record was refused and parked (nothing left to acknowledge).</summary>
    private async ValueTask<bool> Store(List<(Delivery Delivery, object Row)> rows, CancellationToken cancellationToken)
    {
        try
        {
            await schema.Ensure(cancellationToken);
            await Store(rows.Select(r => r.Row), cancellationToken);
            return true;
        }
        catch (PostgresException exception) when (IsBadData(exception) && rows.Count > 1)
        {
            // One bad row spoils the batch: store them one by one so only that one is parked.
            foreach (var one in rows.ToArray())
            {
                try
                {
                    await Store([one.Row], cancellationToken);
                }
                catch (PostgresException bad) when (IsBadData(bad))
                {
                    await Park(one.Delivery, $"PostgreSQL refused the record: {bad.MessageText}", cancellationToken);
                    rows.Remove(one);
                }
            }
            return true;
        }
        catch (PostgresException exception) when (IsBadData(exception))
        {
            await Park(rows[0].Delivery, $"PostgreSQL refused the record: {exception.MessageText}", cancellationToken);
            return false;
        }
    }

    private async Task Store(IEnumerable<object> rows, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync(Insert, rows, transaction);
        await transaction.CommitAsync(cancellationToken);
    }

    private static bool IsBadData(PostgresException exception) =>
        exception.SqlState.StartsWith("22", StringComparison.Ordinal) || exception.SqlState.StartsWith("23", StringComparison.Ordinal);

    /// <summary>A CallRecord as call_records parameters, or why it is not one.</summary>
    public static (object? Row, string? Error) Read(byte[] body)
    {
        CallRecord? r;
        try
        {
            r = JsonSerializer.Deserialize<CallRecord>(body, Wire.Json);
        }
        catch (JsonException exception)
        {
            return (null, $"not a CallRecord: {exception.Message}");
        }
        if (r is null || r.CallId == Guid.Empty || string.IsNullOrEmpty(r.Node) || string.IsNullOrEmpty(r.ChannelId))
            return (null, "a CallRecord needs callId, node and channelId");
        if (!Statuses.Contains(r.Status) || string.IsNullOrEmpty(r.Reason))
            return (null, $"status '{r.Status}' is not SUCCESS/TIMEOUT/FAILED/ABANDONED, or reason is missing");
        return (new
        {
            r.CallId, r.Node, r.ChannelId, ChannelName = r.ChannelName ?? "", CallerNumber = r.CallerNumber ?? "", CallerName = r.CallerName ?? "",
            Extension = r.Extension ?? "", Context = r.Context ?? "", Args = (r.Args ?? []).ToArray(),
            ChannelCreatedAt = r.ChannelCreatedAt.ToUniversalTime(), BroadcastAt = r.BroadcastAt.ToUniversalTime(), Deadline = r.Deadline?.ToUniversalTime(),
            Audience = (r.Audience ?? []).ToArray(), AudienceSize = r.Audience?.Count ?? 0, r.Claims, r.Winner,
            ClaimedAt = r.ClaimedAt?.ToUniversalTime(), r.ClaimLatencyMs, HandedOverAt = r.HandedOverAt?.ToUniversalTime(), r.DecisionLatencyMs,
            r.Status, r.Reason, r.Target, EndedAt = r.EndedAt.ToUniversalTime(), r.DurationS, r.HangupCause, r.HangupCauseText,
            r.Controlled, AnsweredAt = r.AnsweredAt?.ToUniversalTime(), r.ControlEnding, r.ParentCallId,
        }, null);
    }

    private async Task Park(Delivery delivery, string error, CancellationToken cancellationToken)
    {
        logger.LogWarning("CDR record parked in {Queue}: {Error}", Topology.RecordErrorQueue, error);
        var properties = new BasicProperties(delivery.Properties)
        {
            Headers = new Dictionary<string, object?>(delivery.Properties.Headers ?? new Dictionary<string, object?>()) { ["x-error"] = Encoding.UTF8.GetBytes(error) },
            Persistent = true,
        };
        try
        {
            await delivery.Channel.BasicPublishAsync("", Topology.RecordErrorQueue, mandatory: false, properties, delivery.Body, cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            logger.LogError(exception, "Could not park a CDR record; it stays in {Queue}", Topology.RecordQueue);
            return;
        }
        await Ack(delivery, cancellationToken);
    }

    private async Task Ack(Delivery delivery, CancellationToken cancellationToken)
    {
        try
        {
            await delivery.Channel.BasicAckAsync(delivery.Tag, multiple: false, cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // The channel was lost since delivery: the broker redelivers, and ON CONFLICT keeps the row single.
            logger.LogInformation("CDR ack lost ({Error}); the record will be redelivered and not written twice", exception.Message);
        }
    }

    private async Task<IConnection> Connect(CancellationToken cancellationToken)
    {
        return await _connectRetry.ExecuteAsync(async token => await broker.Value.Connect("router cdr writer", cancellationToken: token), cancellationToken);
    }
}
