using System.Reflection;
using Dapper;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace CallRouter.Router.Postgres;

/// <summary>
/// Versioned SQL migrations (Postgres/Migrations/NNN_name.sql, embedded), applied in order at start-up. Each runs once,
/// recorded in schema_migrations; an advisory lock lets several routers start together. Running them again changes nothing.
/// </summary>
public static class Migrations
{
    private const long LockKey = 0x43616c6c526f7574; // "CallRout"

    public static IReadOnlyList<(int Version, string Name, string Sql)> All { get; } = Load();

    /// <summary>Applies what is missing; returns the versions applied now.</summary>
    public static async Task<IReadOnlyList<int>> Apply(NpgsqlDataSource database, ILogger logger, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync("SELECT pg_advisory_xact_lock(@LockKey)", new { LockKey }, transaction);
        await connection.ExecuteAsync("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    int PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, transaction: transaction);
        var done = (await connection.QueryAsync<int>("SELECT version FROM schema_migrations", transaction: transaction)).ToHashSet();
        var applied = new List<int>();
        foreach (var (version, name, sql) in All.Where(m => !done.Contains(m.Version)))
        {
            await connection.ExecuteAsync(sql, transaction: transaction);
            await connection.ExecuteAsync("INSERT INTO schema_migrations (version, name) VALUES (@version, @name)", new { version, name }, transaction);
            logger.LogInformation("Applied migration {Version} {Name}", version, name);
            applied.Add(version);
        }
        await transaction.CommitAsync(cancellationToken);
        return applied;
    }

    private static List<(int, string, string)> Load()
    {
        var assembly = Assembly.GetExecutingAssembly();
        var migrations = new List<(int, string, string)>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith("Migrations/", StringComparison.Ordinal)))
        {
            var file = resource["Migrations/".Length..^".sql".Length];
            var version = int.Parse(file[..file.IndexOf('_')]);
            using var reader = new StreamReader(assembly.GetManifestResourceStream(resource)!);
            migrations.Add((version, file, reader.ReadToEnd()));
        }
        return [.. migrations.OrderBy(m => m.Item1)];
    }
}
