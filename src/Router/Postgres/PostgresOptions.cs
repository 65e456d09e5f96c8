namespace CallRouter.Router.Postgres;

/// <summary>PostgreSQL settings, bound from the "Postgres" section (e.g. Postgres__ConnectionString=Host=db;...).</summary>
public sealed class PostgresOptions
{
    public const string Section = "Postgres";

    /// <summary>Npgsql connection string. Holds the CDR table, and the saga table when Router__SagaRepository=Postgres.</summary>
    public string ConnectionString { get; set; } = "Host=localhost;Port=5432;Username=callrouter;Password=callrouter;Database=callrouter";

    /// <summary>Write CDRs (CallRecord messages) to the call_records table. Off: records wait in the cdr.writer queue.</summary>
    public bool WriteCdrs { get; set; } = true;

    /// <summary>Most CDRs written in one transaction.</summary>
    public int CdrBatchSize { get; set; } = 200;

    /// <summary>Saga rows not touched for this long are deleted (their ForgetCall was lost, e.g. in a broker crash).</summary>
    public TimeSpan SagaMaxAge { get; set; } = TimeSpan.FromHours(1);
}
