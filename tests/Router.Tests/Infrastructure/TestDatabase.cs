using Npgsql;

namespace CallRouter.Tests.Infrastructure;

/// <summary>
/// A fresh database on the real PostgreSQL (Postgres__ConnectionString, default localhost callrouter/callrouter), dropped
/// afterwards. An unreachable server fails the test.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    public const string DefaultConnectionString = "Host=localhost;Port=5432;Username=callrouter;Password=callrouter;Database=callrouter";

    private readonly string _admin;

    private TestDatabase(string admin, string name, string connectionString)
    {
        (_admin, Name, ConnectionString) = (admin, name, connectionString);
        DataSource = NpgsqlDataSource.Create(connectionString);
    }

    public string Name { get; }
    public string ConnectionString { get; }
    public NpgsqlDataSource DataSource { get; }

    public static async Task<TestDatabase> Create()
    {
        var admin = Environment.GetEnvironmentVariable("Postgres__ConnectionString") ?? DefaultConnectionString;
        var name = $"crt_{Guid.NewGuid():N}"[..16];
        try
        {
            await using var connection = new NpgsqlConnection(admin);
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await create.ExecuteNonQueryAsync();
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            throw new InvalidOperationException($"PostgreSQL at '{admin}' is not usable; run infra/postgres.sh (or ./test.sh, which does)", exception);
        }
        return new TestDatabase(admin, name, new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString);
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        try
        {
            await using var connection = new NpgsqlConnection(_admin);
            await connection.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", connection);
            await drop.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException)
        {
            // Left behind when the server went away mid-test; harmless.
        }
    }
}
