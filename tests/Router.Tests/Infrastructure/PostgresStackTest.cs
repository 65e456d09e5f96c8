using Dapper;
using Xunit;

namespace CallRouter.Tests.Infrastructure;

/// <summary>
/// A routing stack whose routers use a fresh PostgreSQL database. Tests that use PostgreSQL share one collection:
/// one of them stops the server for 30 s, and the others must not run meanwhile.
/// </summary>
[Collection(PostgresCollection.Name)]
public abstract class PostgresStackTest : IAsyncLifetime
{
    static PostgresStackTest() => DefaultTypeMap.MatchNamesWithUnderscores = true;

    protected RoutingStack Stack { get; } = new();
    protected TestDatabase Database { get; private set; } = null!;

    /// <summary>Sagas in PostgreSQL too (not only CDRs).</summary>
    protected virtual bool SagasInPostgres => false;

    /// <summary>Settings for the stack before it starts.</summary>
    protected virtual void Configure(RoutingStack stack)
    {
    }

    public async Task InitializeAsync()
    {
        Database = await TestDatabase.Create();
        Stack.UsePostgres(Database, SagasInPostgres);
        Stack.RouterSettings["Router:FinishedRetention"] = "00:00:00.500";
        Stack.AdapterSettings["Adapter:TallyWait"] = "00:00:10";
        Stack.SimulatorOptions = new AriSimulator.AriSimulatorOptions { HangupAfterHandover = TimeSpan.FromMilliseconds(100) };
        Configure(Stack);
        await Stack.InitializeAsync();
    }

    public virtual async Task DisposeAsync()
    {
        await Stack.DisposeAsync();
        await Database.DisposeAsync();
    }

    protected async Task<long> CdrCount(bool complete = false)
    {
        await using var connection = await Database.DataSource.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>(complete ? "SELECT count(*) FROM call_records WHERE claims IS NOT NULL" : "SELECT count(*) FROM call_records");
    }

    /// <summary>
    /// Waits until call_records has <paramref name="count"/> rows (the table appears with the first write), by default
    /// complete ones: a row lands when its channel ends, and gets its claim count when the router's tally follows.
    /// </summary>
    protected async Task WaitForCdrs(long count, TimeSpan within, bool complete = true)
    {
        long seen = -1;
        string? lastError = null;
        await Eventually.True(async () =>
        {
            try
            {
                seen = await CdrCount(complete);
            }
            catch (Npgsql.PostgresException e) when (e.SqlState == Npgsql.PostgresErrorCodes.UndefinedTable)
            {
                seen = 0;
            }
            catch (Npgsql.NpgsqlException e)
            {
                // The server is away (the outage test); keep waiting.
                lastError = e.Message;
            }
            return seen >= count;
        }, within, () => $"expected {count} CDR rows, saw {seen}{(lastError is null ? "" : $" (last error: {lastError})")}");
    }

    protected async Task<List<CdrRow>> Cdrs()
    {
        await using var connection = await Database.DataSource.OpenConnectionAsync();
        return [.. await connection.QueryAsync<CdrRow>("SELECT * FROM call_records")];
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection
{
    public const string Name = "postgres";
}

/// <summary>A call_records row.</summary>
public sealed class CdrRow
{
    public Guid CallId { get; set; }
    public string Node { get; set; } = "";
    public string ChannelId { get; set; } = "";
    public string ChannelName { get; set; } = "";
    public string CallerNumber { get; set; } = "";
    public string CallerName { get; set; } = "";
    public string Extension { get; set; } = "";
    public string Context { get; set; } = "";
    public string[] Args { get; set; } = [];
    public DateTime ChannelCreatedAt { get; set; }
    public DateTime BroadcastAt { get; set; }
    public DateTime? Deadline { get; set; }
    public string[] Audience { get; set; } = [];
    public int AudienceSize { get; set; }
    public int? Claims { get; set; }
    public string? Winner { get; set; }
    public DateTime? ClaimedAt { get; set; }
    public double? ClaimLatencyMs { get; set; }
    public DateTime? HandedOverAt { get; set; }
    public double? DecisionLatencyMs { get; set; }
    public string Status { get; set; } = "";
    public string Reason { get; set; } = "";
    public string? Target { get; set; }
    public DateTime EndedAt { get; set; }
    public double DurationS { get; set; }
    public int? HangupCause { get; set; }
    public string? HangupCauseText { get; set; }
    public DateTime RecordedAt { get; set; }
}
