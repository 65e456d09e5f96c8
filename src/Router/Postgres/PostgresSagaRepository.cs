using System.Runtime.CompilerServices;
using System.Text.Json;
using CallRouter.Router.Saga;
using Dapper;
using MassTransit;
using MassTransit.Context;
using MassTransit.Saga;
using Npgsql;

namespace CallRouter.Router.Postgres;

/// <summary>
/// Call sagas in PostgreSQL with optimistic concurrency, so several routers can share the router queue. Every write
/// checks the version it read; a writer that lost the race gets <see cref="ConcurrencyException"/>, MassTransit's
/// retry runs the message again on the committed state, and the in-memory outbox drops what the failed attempt
/// would have sent. Rows live in an UNLOGGED table (see Migrations/002).
/// </summary>
public static class PostgresSagaRepository
{
    public static ISagaRepository<CallState> Create(NpgsqlDataSource database) =>
        new SagaRepository<CallState>(new CallSagaContextFactory(new CallSagaStore(database)));

    /// <summary>
    /// The saga connection string as given, with pooled connections kept as they are between messages (no DISCARD ALL)
    /// and the four statements prepared on the server after first use.
    /// </summary>
    public static string Tune(string connectionString) => new NpgsqlConnectionStringBuilder(connectionString)
    {
        NoResetOnClose = true,
        MaxAutoPrepare = 16,
        AutoPrepareMinUsages = 2,
    }.ConnectionString;
}

/// <summary>The four statements the saga needs, one round trip each; one connection serves a whole message.</summary>
public sealed class CallSagaStore(NpgsqlDataSource database)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    // Each loaded saga's row as read: an event that changed nothing (an ignored deadline, a late timer) writes nothing.
    private static readonly ConditionalWeakTable<CallState, string> AsRead = new();

    public ValueTask<NpgsqlConnection> Open(CancellationToken cancellationToken) => database.OpenConnectionAsync(cancellationToken);

    public static async Task<CallState?> Load(NpgsqlConnection connection, Guid id)
    {
        var row = await connection.QuerySingleOrDefaultAsync<(int Version, string Data)?>(
            "SELECT version, data FROM call_sagas WHERE correlation_id = @id", new { id });
        if (row is not { } found)
            return null;
        var saga = JsonSerializer.Deserialize<CallState>(found.Data, Json)!;
        saga.Version = found.Version;
        AsRead.AddOrUpdate(saga, found.Data);
        return saga;
    }

    public static async Task Insert(NpgsqlConnection connection, CallState saga)
    {
        saga.Version = 1;
        try
        {
            await connection.ExecuteAsync(
                "INSERT INTO call_sagas (correlation_id, version, current_state, data) VALUES (@CorrelationId, 1, @CurrentState, @Data)",
                new { saga.CorrelationId, saga.CurrentState, Data = JsonSerializer.Serialize(saga, Json) });
        }
        catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new ConcurrencyException($"call {saga.CorrelationId} was created by another router", typeof(CallState), saga.CorrelationId, exception);
        }
    }

    public static async Task Update(NpgsqlConnection connection, CallState saga)
    {
        var read = saga.Version;
        if (AsRead.TryGetValue(saga, out var before) && JsonSerializer.Serialize(saga, Json) == before)
            return;
        saga.Version = read + 1;
        var rows = await connection.ExecuteAsync("""
            UPDATE call_sagas SET version = @Version, current_state = @CurrentState, data = @Data, updated_at = now()
            WHERE correlation_id = @CorrelationId AND version = @read
            """, new { saga.CorrelationId, saga.Version, saga.CurrentState, Data = JsonSerializer.Serialize(saga, Json), read });
        if (rows == 0)
            throw new ConcurrencyException($"call {saga.CorrelationId} changed since version {read} was read", typeof(CallState), saga.CorrelationId);
    }

    public static async Task Delete(NpgsqlConnection connection, CallState saga)
    {
        var rows = await connection.ExecuteAsync("DELETE FROM call_sagas WHERE correlation_id = @CorrelationId AND version = @Version",
            new { saga.CorrelationId, saga.Version });
        if (rows == 0)
            throw new ConcurrencyException($"call {saga.CorrelationId} changed since version {saga.Version} was read", typeof(CallState), saga.CorrelationId);
    }

    /// <summary>Deletes rows untouched for longer than <paramref name="maxAge"/>; returns how many.</summary>
    public async Task<int> Sweep(TimeSpan maxAge, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenConnectionAsync(cancellationToken);
        return await connection.ExecuteAsync("DELETE FROM call_sagas WHERE updated_at < now() - @maxAge", new { maxAge });
    }
}

internal sealed class CallSagaContextFactory(CallSagaStore store) : ISagaRepositoryContextFactory<CallState>
{
    public void Probe(ProbeContext context) => context.Add("persistence", "postgresql");

    public async Task Send<T>(ConsumeContext<T> context, IPipe<SagaRepositoryContext<CallState, T>> next) where T : class
    {
        await using var connection = await store.Open(context.CancellationToken);
        await next.Send(new CallSagaRepositoryContext<T>(connection, context));
    }

    public Task SendQuery<T>(ConsumeContext<T> context, ISagaQuery<CallState> query, IPipe<SagaRepositoryQueryContext<CallState, T>> next) where T : class =>
        throw new NotSupportedException("call sagas are found by call id only");
}

internal sealed class CallSagaRepositoryContext<TMessage>(NpgsqlConnection connection, ConsumeContext<TMessage> consumeContext) :
    ConsumeContextScope<TMessage>(consumeContext), SagaRepositoryContext<CallState, TMessage>
    where TMessage : class
{
    private readonly ConsumeContext<TMessage> _context = consumeContext;

    public Task<SagaConsumeContext<CallState, TMessage>> Add(CallState instance) =>
        Task.FromResult<SagaConsumeContext<CallState, TMessage>>(new CallSagaConsumeContext<TMessage>(_context, instance));

    public async Task<SagaConsumeContext<CallState, TMessage>> Insert(CallState instance)
    {
        await CallSagaStore.Insert(connection, instance);
        return new CallSagaConsumeContext<TMessage>(_context, instance);
    }

    public async Task<SagaConsumeContext<CallState, TMessage>> Load(Guid correlationId) =>
        await CallSagaStore.Load(connection, correlationId) is { } saga ? new CallSagaConsumeContext<TMessage>(_context, saga) : null!;

    public Task Save(SagaConsumeContext<CallState> context) => CallSagaStore.Insert(connection, context.Saga);

    public Task Update(SagaConsumeContext<CallState> context) => CallSagaStore.Update(connection, context.Saga);

    public Task Delete(SagaConsumeContext<CallState> context) => CallSagaStore.Delete(connection, context.Saga);

    public Task Discard(SagaConsumeContext<CallState> context) => Task.CompletedTask;

    public Task Undo(SagaConsumeContext<CallState> context) => Task.CompletedTask;

    public Task<SagaConsumeContext<CallState, T>> CreateSagaConsumeContext<T>(ConsumeContext<T> consumeContext, CallState instance, SagaConsumeContextMode mode)
        where T : class =>
        Task.FromResult<SagaConsumeContext<CallState, T>>(new CallSagaConsumeContext<T>(consumeContext, instance));
}

internal sealed class CallSagaConsumeContext<TMessage>(ConsumeContext<TMessage> context, CallState saga) :
    ConsumeContextScope<TMessage>(context), SagaConsumeContext<CallState, TMessage>
    where TMessage : class
{
    public CallState Saga { get; } = saga;

    public bool IsCompleted { get; private set; }

    public Task SetCompleted()
    {
        IsCompleted = true;
        return Task.CompletedTask;
    }
}
