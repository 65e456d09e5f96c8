using System.Text;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Router.Postgres;
using CallRouter.Router.Saga;
using CallRouter.Tests.Infrastructure;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Logging.Abstractions;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>One CDR row per call in PostgreSQL, written after the channel is destroyed, with every field.</summary>
public sealed class CdrTests : PostgresStackTest
{
    [Fact]
    public async Task A_claimed_call_gets_one_row_with_every_field_after_its_channel_is_destroyed()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var support = await Stack.AddApp("support", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>();
        sales.BroadcastReceived += b => offered.TrySetResult(b);

        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000", "args=vip:gold"], extension: "2000", callerNumber: "5557777", callerName: "Carol");
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(5));
        var won = await sales.Claim(broadcast.CallId, new DialplanTarget("sales", "s", 1));
        var lost = await support.Claim(broadcast.CallId);
        await channel.Destroyed.WaitAsync(TimeSpan.FromSeconds(5));
        await WaitForCdrs(1, TimeSpan.FromSeconds(15));

        Assert.True(won.Accepted);
        Assert.Equal(RejectReason.AlreadyClaimed, lost.Reason);
        var row = Assert.Single(await Cdrs());
        Assert.Equal(broadcast.CallId, row.CallId);
        Assert.Equal(RoutingStack.Node, row.Node);
        Assert.Equal(channel.Id, row.ChannelId);
        Assert.Equal(channel.Name, row.ChannelName);
        Assert.Equal(("5557777", "Carol", "2000"), (row.CallerNumber, row.CallerName, row.Extension));
        Assert.Equal(["vip", "gold"], row.Args);
        Assert.Equal(["sales", "support"], row.Audience.Order());
        Assert.Equal(2, row.AudienceSize);
        Assert.Equal(2, row.Claims);
        Assert.Equal("sales", row.Winner);
        Assert.Equal((CallStatus.Success, DispositionReason.Claimed), (row.Status, row.Reason));
        Assert.Equal("sales,s,1", row.Target);
        Assert.Equal(broadcast.BroadcastAt.UtcDateTime, row.BroadcastAt, TimeSpan.FromMilliseconds(1));
        Assert.Equal(broadcast.Deadline.UtcDateTime, row.Deadline!.Value, TimeSpan.FromMilliseconds(1));
        Assert.InRange(row.ClaimLatencyMs!.Value, 0, 3000);
        Assert.InRange(row.DecisionLatencyMs!.Value, row.ClaimLatencyMs.Value, 3000);
        Assert.Equal((16, "Normal Clearing"), (row.HangupCause, row.HangupCauseText));
        Assert.True(row.EndedAt > row.HandedOverAt);
        Assert.InRange(row.DurationS, 0.05, 10);
    }

    [Fact]
    public async Task Timed_out_and_failed_calls_get_their_rows_too()
    {
        await Stack.AddApp("sales", autoClaim: false);
        var timedOut = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=300"]);
        var failed = Stack.Ari.Originate(RoutingStack.StasisApp, ["filter=^billing$"]);
        await Task.WhenAll(timedOut.Destroyed, failed.Destroyed).WaitAsync(TimeSpan.FromSeconds(5));
        await WaitForCdrs(2, TimeSpan.FromSeconds(15));

        var rows = (await Cdrs()).ToDictionary(r => r.ChannelId);
        var timeout = rows[timedOut.Id];
        Assert.Equal((CallStatus.Timeout, DispositionReason.NoClaim, 0, (string?)null), (timeout.Status, timeout.Reason, timeout.Claims, timeout.Winner));
        Assert.Equal(["sales"], timeout.Audience);
        var fail = rows[failed.Id];
        Assert.Equal((CallStatus.Failed, DispositionReason.NoLiveApp, 0, 0), (fail.Status, fail.Reason, fail.Claims, fail.AudienceSize));
        Assert.Null(fail.Deadline);
        Assert.Equal(failed.Variables[CallHandover.CallIdVariable], fail.CallId.ToString());
    }

    [Fact]
    public async Task A_redelivered_record_writes_no_second_row_and_a_malformed_one_is_parked_with_the_reason()
    {
        var now = DateTimeOffset.UtcNow;
        // As the adapter sends it when the channel ends: no claim count yet.
        var record = new CallRecord(Guid.NewGuid(), "node-x", "1.1", "PJSIP/1-1", "100", "Bob", "1000", "default", [], now.AddSeconds(-9),
            now.AddSeconds(-8), now.AddSeconds(-6), ["sales"], null, "sales", now.AddSeconds(-7.99), now.AddSeconds(-7.98),
            CallStatus.Success, DispositionReason.Claimed, null, now, 16, "Normal Clearing");
        var o = Stack.Broker.Options;
        var factory = o.Factory("test CdrTests");
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var persistent = new BasicProperties { Persistent = true, ContentType = "application/json", Type = Topology.Types.CallRecord };
        // Delivered twice, then again with the router's claim tally, then the first copy once more (a late redelivery),
        // then a copy that claims another winner: five deliveries of one call.
        await channel.BasicPublishAsync(Topology.RecordExchange, "", false, persistent, Wire.Serialize(record));
        await channel.BasicPublishAsync(Topology.RecordExchange, "", false, persistent, Wire.Serialize(record));
        await channel.BasicPublishAsync(Topology.RecordExchange, "", false, persistent, Wire.Serialize(record with { Claims = 3 }));
        await channel.BasicPublishAsync(Topology.RecordExchange, "", false, persistent, Wire.Serialize(record));
        await channel.BasicPublishAsync(Topology.RecordExchange, "", false, persistent, Wire.Serialize(record with { Claims = 1, Winner = "mallory" }));
        await channel.BasicPublishAsync(Topology.RecordExchange, "", false, persistent, Encoding.UTF8.GetBytes("""{"callId":"not-a-guid"}"""));
        await channel.BasicPublishAsync(Topology.RecordExchange, "", false, persistent, Wire.Serialize(record with { CallId = Guid.NewGuid(), Status = "MAYBE" }));

        string parked = "";
        await WaitForCdrs(1, TimeSpan.FromSeconds(15));
        await Eventually.True(async () => (parked = await Stack.Broker.GetQueueMessages(Topology.RecordErrorQueue)).Contains("MAYBE"),
            TimeSpan.FromSeconds(15), "the malformed records were not parked");
        // Every one of the seven deliveries was acknowledged and none is left ready or unacknowledged in cdr.writer
        // (the management API's figures, which trail by a few seconds).
        long acks = -1, left = -1;
        await Eventually.True(async () =>
        {
            var queue = await Stack.Broker.GetJson(Stack.Broker.QueuePath(Topology.RecordQueue));
            acks = queue.TryGetProperty("message_stats", out var stats) && stats.TryGetProperty("ack", out var a) ? a.GetInt64() : -1;
            left = queue.TryGetProperty("messages", out var m) ? m.GetInt64() : -1;
            return acks >= 7 && left == 0;
        }, TimeSpan.FromSeconds(30), $"cdr.writer: {acks} deliveries acknowledged, {left} left (ready or unacknowledged); expected 7 and 0");
        Assert.Equal(7, acks);
        // The duplicates were acknowledged as written, not parked as bad data: only the two malformed records are.
        Assert.Equal(2u, await Stack.Broker.MessageCount(Topology.RecordErrorQueue));
        var row = Assert.Single(await Cdrs());
        Assert.Equal(record.CallId, row.CallId);
        // The tally filled in the missing claim count; neither the late copy nor the other winner overwrote the row.
        Assert.Equal(3, row.Claims);
        Assert.Equal("sales", row.Winner);
        Assert.Contains("not a CallRecord", parked);
        Assert.Contains("is not SUCCESS/TIMEOUT/FAILED/ABANDONED", parked);
    }

    [Fact]
    public async Task Migrations_run_twice_apply_nothing_the_second_time_and_change_nothing()
    {
        await using var database = await TestDatabase.Create();
        var first = await Migrations.Apply(database.DataSource, NullLogger.Instance);
        var schema = await SchemaOf(database);
        var second = await Migrations.Apply(database.DataSource, NullLogger.Instance);

        Assert.Equal(Migrations.All.Select(m => m.Version), first);
        Assert.Empty(second);
        Assert.Equal(schema, await SchemaOf(database));
        await using var connection = await database.DataSource.OpenConnectionAsync();
        Assert.Equal(Migrations.All.Count, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM schema_migrations"));
        Assert.Equal("u", await connection.ExecuteScalarAsync<string>("SELECT relpersistence::text FROM pg_class WHERE relname = 'call_sagas'"));
        Assert.Equal("p", await connection.ExecuteScalarAsync<string>("SELECT relpersistence::text FROM pg_class WHERE relname = 'call_records'"));
    }

    [Fact]
    public async Task The_saga_store_refuses_a_stale_update_and_a_second_insert_with_a_concurrency_exception()
    {
        await using var database = await TestDatabase.Create();
        await Migrations.Apply(database.DataSource, NullLogger.Instance);
        await using var connection = await database.DataSource.OpenConnectionAsync();
        var id = Guid.NewGuid();
        await CallSagaStore.Insert(connection, new CallState { CorrelationId = id, CurrentState = "Open", Audience = ["sales"] });

        var first = (await CallSagaStore.Load(connection, id))!;
        var second = (await CallSagaStore.Load(connection, id))!;
        first.Winner = "sales";
        await CallSagaStore.Update(connection, first);
        second.Winner = "support";

        await Assert.ThrowsAsync<ConcurrencyException>(() => CallSagaStore.Update(connection, second));
        await Assert.ThrowsAsync<ConcurrencyException>(() => CallSagaStore.Insert(connection, new CallState { CorrelationId = id, CurrentState = "Open" }));
        var stored = (await CallSagaStore.Load(connection, id))!;
        Assert.Equal(("sales", 2), (stored.Winner, stored.Version));
        Assert.Equal(["sales"], stored.Audience);
    }

    private static async Task<string> SchemaOf(TestDatabase database)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync();
        var columns = await connection.QueryAsync<string>("""
            SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable FROM information_schema.columns
            WHERE table_schema = 'public' ORDER BY table_name, ordinal_position
            """);
        var indexes = await connection.QueryAsync<string>("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname");
        return string.Join('\n', columns.Concat(indexes));
    }
}
