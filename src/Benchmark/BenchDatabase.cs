using Npgsql;

namespace CallRouter.Benchmark;

/// <summary>A fresh PostgreSQL database for one benchmark run (Postgres__ConnectionString names the server), dropped after.</summary>
public sealed class BenchDatabase : IAsyncDisposable
{
    private readonly string _admin;

    private BenchDatabase(string admin, string name) =>
        (_admin, Name, ConnectionString) = (admin, name, new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString);

    public string Name { get; }
    public string ConnectionString { get; }

    public static async Task<BenchDatabase> Create()
    {
        var admin = Environment.GetEnvironmentVariable("Postgres__ConnectionString")
            ?? "Host=localhost;Port=5432;Username=callrouter;Password=callrouter;Database=callrouter";
        var name = $"bench_{Guid.NewGuid():N}"[..18];
        await using var connection = new NpgsqlConnection(admin);
        await connection.OpenAsync();
        await new NpgsqlCommand($"CREATE DATABASE {name}", connection).ExecuteNonQueryAsync();
        return new BenchDatabase(admin, name);
    }

    public async Task<long> CountRecords()
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        return (long)(await new NpgsqlCommand("SELECT count(*) FROM call_records", connection).ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(_admin);
        await connection.OpenAsync();
        await new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", connection).ExecuteNonQueryAsync();
    }
}
