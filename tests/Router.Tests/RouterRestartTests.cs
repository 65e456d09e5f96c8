using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Dapper;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// A call broadcast before its router restarted and claimed after: with sagas in memory the router forgot it, so the
/// claim is answered `not-found` and the adapter falls back TIMEOUT/router-no-answer (never a claim lost as no-claim);
/// with sagas in PostgreSQL the call survives and the claim wins it.
/// </summary>
public sealed class RouterRestartInMemoryTests : RoutingTest
{
    [Fact]
    public async Task A_call_claimed_after_an_in_memory_router_restart_is_answered_not_found_and_falls_back_router_no_answer()
    {
        var (channel, reply) = await RouterRestart.ClaimAcross(Stack, id => Stack.WaitForSagaState(id, "Open"));

        Assert.False(reply.Accepted);
        Assert.Equal(RejectReason.NotFound, reply.Reason);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(CallStatus.Timeout, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.RouterNoAnswer, channel.Variables[CallHandover.ReasonVariable]);
    }
}

/// <summary>See <see cref="RouterRestartInMemoryTests"/>.</summary>
public sealed class RouterRestartInPostgresTests : PostgresStackTest
{
    protected override bool SagasInPostgres => true;

    [Fact]
    public async Task A_call_claimed_after_a_router_restart_with_sagas_in_PostgreSQL_is_won_by_the_claim()
    {
        var (channel, reply) = await RouterRestart.ClaimAcross(Stack, id => Eventually.True(async () =>
        {
            await using var connection = await Database.DataSource.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<string>("SELECT current_state FROM call_sagas WHERE correlation_id = @id", new { id }) == "Open";
        }, TimeSpan.FromSeconds(10), "the call never reached saga state Open in PostgreSQL"));

        Assert.True(reply.Accepted, $"{reply.Reason} {reply.Detail}");
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.Claimed, channel.Variables[CallHandover.ReasonVariable]);
        Assert.Equal("sales-queue", channel.ContinuedTo!.Context);
    }
}

internal static class RouterRestart
{
    /// <summary>Broadcasts a call (8 s timeout), restarts the router, then claims it; returns the channel and the answer.</summary>
    public static async Task<(AriSimulator.SimChannel Channel, ClaimReply Reply)> ClaimAcross(RoutingStack stack, Func<Guid, Task> untilOpen)
    {
        var sales = await stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>(TaskCreationOptions.RunContinuationsAsynchronously);
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=8000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await untilOpen(broadcast.CallId);

        await stack.StopRouter();
        await stack.StartRouter();
        // Checked before the claim: after it, the decision may reach the adapter before the reply reaches the app.
        Assert.False(channel.Handover.IsCompleted, "the call was handed over before it was claimed");
        var reply = await sales.Claim(broadcast.CallId, new DialplanTarget("sales-queue", "s", 1)).WaitAsync(TimeSpan.FromSeconds(10));
        return (channel, reply);
    }
}
