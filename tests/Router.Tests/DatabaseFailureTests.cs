using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Npgsql;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// With sagas in PostgreSQL, every claim gets exactly one answer whatever the database does: connections cut under
/// the router are retried (the claims are decided as usual), and a database that stays away gets "unavailable".
/// </summary>
public sealed class DatabaseFailureTests : PostgresStackTest
{
    protected override bool SagasInPostgres => true;

    [Fact]
    public async Task Every_claim_gets_exactly_one_answer_when_the_database_fails()
    {
        var alpha = await Stack.AddApp("alpha", autoClaim: false);
        var beta = await Stack.AddApp("beta", autoClaim: false);
        var offered = new System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource<CallBroadcast>>();
        alpha.BroadcastReceived += b => offered.GetOrAdd(b.ChannelId, _ => new()).TrySetResult(b);
        async Task<(AriSimulator.SimChannel Channel, Guid CallId)[]> Offer(int count)
        {
            var channels = Enumerable.Range(0, count).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=15000"])).ToList();
            var offers = await Task.WhenAll(channels.Select(c => offered.GetOrAdd(c.Id, _ => new()).Task)).WaitAsync(TimeSpan.FromSeconds(10));
            // The router has stored each call before the database is taken away (the app may hear the broadcast first).
            foreach (var offer in offers)
                await Eventually.True(async () =>
                {
                    // Its own connection: CutConnections also ends the pooled ones of this test.
                    await using var connection = new NpgsqlConnection(Database.ConnectionString + ";Pooling=false");
                    await connection.OpenAsync();
                    await using var state = new NpgsqlCommand("SELECT current_state FROM call_sagas WHERE correlation_id = @id", connection);
                    state.Parameters.AddWithValue("id", offer.CallId);
                    return (string?)await state.ExecuteScalarAsync() == "Open";
                }, TimeSpan.FromSeconds(10), $"call {offer.CallId} was never stored by the router");
            return [.. channels.Zip(offers, (c, o) => (c, o.CallId))];
        }

        // 1. Every connection the router holds is cut; both apps race for each call: the retries decide every race.
        var raced = await Offer(10);
        await CutConnections();
        var answers = await Task.WhenAll(raced.SelectMany(c => new[] { alpha.Claim(c.CallId), beta.Claim(c.CallId) }));
        Assert.All(answers, a => Assert.True(a.Accepted || a.Reason == RejectReason.AlreadyClaimed, $"{a.Reason}: {a.Detail}"));
        foreach (var (channel, callId) in raced)
        {
            var forCall = answers.Where(a => a.CallId == callId).ToList();
            Assert.Single(forCall, a => a.Accepted);
            await channel.Handover.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(forCall.Single(a => a.Accepted).App, channel.Variables[CallHandover.WinnerVariable]);
        }

        // 2. The database refuses connections for longer than the retries last: each claim is answered "unavailable".
        var stranded = await Offer(5);
        await SetAllowConnections(false);
        await CutConnections();
        var refused = await Task.WhenAll(stranded.Select(c => alpha.Claim(c.CallId)));
        Assert.All(refused, r => Assert.Equal(RejectReason.Unavailable, r.Reason));

        // 3. Back again: the same claims are decided (the calls were kept), and each claim so far had one answer.
        await SetAllowConnections(true);
        var retried = await Task.WhenAll(stranded.Select(c => alpha.Claim(c.CallId)));
        Assert.All(retried, r => Assert.True(r.Accepted, $"{r.Reason}: {r.Detail}"));
        await Task.WhenAll(stranded.Select(c => c.Channel.Handover)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(stranded, c => Assert.Equal("alpha", c.Channel.Variables[CallHandover.WinnerVariable]));
        Assert.True(answers.Length + refused.Length + retried.Length == alpha.Replies.Count + beta.Replies.Count, string.Join("\n", alpha.Replies.Concat(beta.Replies)));
    }

    private static NpgsqlConnection Admin() =>
        new(Environment.GetEnvironmentVariable("Postgres__ConnectionString") ?? TestDatabase.DefaultConnectionString);

    private async Task CutConnections()
    {
        await using var connection = Admin();
        await connection.OpenAsync();
        await using var cut = new NpgsqlCommand(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = @name AND pid <> pg_backend_pid()", connection);
        cut.Parameters.AddWithValue("name", Database.Name);
        await cut.ExecuteScalarAsync();
    }

    private async Task SetAllowConnections(bool allow)
    {
        await using var connection = Admin();
        await connection.OpenAsync();
        await using var alter = new NpgsqlCommand($"ALTER DATABASE {Database.Name} WITH ALLOW_CONNECTIONS {(allow ? "true" : "false")}", connection);
        await alter.ExecuteNonQueryAsync();
    }
}
