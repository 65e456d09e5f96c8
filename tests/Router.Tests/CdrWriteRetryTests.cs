using System.Collections.Concurrent;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// The CDR writer's "cdr-write" retry: while this test's database refuses connections a record is tried again, 250 ms
/// longer each time, stays unacknowledged, and lands once when the database is back.
/// </summary>
public sealed class CdrWriteRetryTests : PostgresStackTest
{
    private readonly ConcurrentQueue<string> _routerLog = new();

    protected override void Configure(RoutingStack stack) =>
        stack.ConfigureRouterServices = services => services.AddSingleton<ILoggerProvider>(new LogLines(_routerLog));

    [Fact]
    public async Task A_record_is_retried_with_linear_back_off_while_the_database_refuses_connections_and_lands_once_when_it_is_back()
    {
        await SetAllowConnections(false);
        var now = DateTimeOffset.UtcNow;
        var record = new CallRecord(Guid.NewGuid(), "node-x", "1.1", "PJSIP/1-1", "100", "Bob", "1000", "default", [], now.AddSeconds(-9),
            now.AddSeconds(-8), now.AddSeconds(-6), ["sales"], 1, "sales", now.AddSeconds(-7.99), now.AddSeconds(-7.98),
            CallStatus.Success, DispositionReason.Claimed, null, now, 16, "Normal Clearing");
        try
        {
            var o = Stack.Broker.Options;
            var factory = o.Factory("test CdrWriteRetryTests");
            await using var connection = await factory.CreateConnectionAsync();
            await using var channel = await connection.CreateChannelAsync();
            await channel.BasicPublishAsync(Topology.RecordExchange, "", false,
                new BasicProperties { Persistent = true, ContentType = "application/json", Type = Topology.Types.CallRecord }, Wire.Serialize(record));

            // Attempt 1 waits 250 ms, attempt 2 500 ms, attempt 3 750 ms: the third retry proves the growth.
            await Eventually.True(() => _routerLog.Any(l => l.StartsWith("CDR write of 1 records failed (attempt 3), retrying in 750 ms: ")),
                TimeSpan.FromSeconds(20), () => "no third CDR write retry logged:\n" + string.Join("\n", _routerLog));
            Assert.Contains(_routerLog, l => l.StartsWith("CDR write of 1 records failed (attempt 1), retrying in 250 ms: "));
            Assert.Contains(_routerLog, l => l.StartsWith("CDR write of 1 records failed (attempt 2), retrying in 500 ms: "));
            Assert.Equal(0u, await Stack.Broker.MessageCount(Topology.RecordQueue));
            await HeldUnacknowledged(Topology.RecordQueue);
        }
        finally
        {
            await SetAllowConnections(true);
        }

        await WaitForCdrs(1, TimeSpan.FromSeconds(20));
        var row = Assert.Single(await Cdrs());
        Assert.Equal((record.CallId, CallStatus.Success, "sales", 1), (row.CallId, row.Status, row.Winner, row.Claims));
        Assert.Equal(0u, await Stack.Broker.MessageCount(Topology.RecordErrorQueue));
    }

    /// <summary>The writer holds the record unacknowledged while it retries; the management API counts it with a lag.</summary>
    private async Task HeldUnacknowledged(string queue)
    {
        long unacked = -1;
        await Eventually.True(async () =>
        {
            var json = await Stack.Broker.GetJson(Stack.Broker.QueuePath(queue));
            unacked = json.TryGetProperty("messages_unacknowledged", out var u) ? u.GetInt64() : -1;
            return unacked == 1;
        }, TimeSpan.FromSeconds(15), () => $"{unacked} messages unacknowledged in {queue}; expected the retried record alone");
    }

    private async Task SetAllowConnections(bool allow)
    {
        await using var connection = new NpgsqlConnection(Environment.GetEnvironmentVariable("Postgres__ConnectionString") ?? TestDatabase.DefaultConnectionString);
        await connection.OpenAsync();
        await using (var alter = new NpgsqlCommand($"ALTER DATABASE {Database.Name} WITH ALLOW_CONNECTIONS {(allow ? "true" : "false")}", connection))
            await alter.ExecuteNonQueryAsync();
        if (allow)
            return;
        await using var cut = new NpgsqlCommand(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = @name AND pid <> pg_backend_pid()", connection);
        cut.Parameters.AddWithValue("name", Database.Name);
        await cut.ExecuteScalarAsync();
    }

    /// <summary>The router's warnings, formatted.</summary>
    private sealed class LogLines(ConcurrentQueue<string> lines) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
                lines.Enqueue(formatter(state, exception));
        }

        public void Dispose()
        {
        }
    }
}
