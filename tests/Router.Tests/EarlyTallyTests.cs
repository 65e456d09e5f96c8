using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// Once every app offered a call has claimed it, the router sends the claim tally at once instead of when it forgets the
/// call: the CDR is complete when the channel ends. A claim counted after that raises the count, which the tally at forget
/// time sends again, and the row follows it.
/// </summary>
public sealed class EarlyTallyTests : PostgresStackTest
{
    private static readonly TimeSpan Retention = TimeSpan.FromSeconds(8);

    protected override void Configure(RoutingStack stack)
    {
        stack.RouterSettings["Router:FinishedRetention"] = Retention.ToString();
        stack.AdapterSettings["Adapter:TallyWait"] = "00:00:30";
    }

    [Fact]
    public async Task A_call_every_offered_app_claimed_lands_complete_before_the_router_forgets_it_and_a_later_claim_raises_its_count()
    {
        var sales = await Stack.AddApp("sales");
        var billing = await Stack.AddApp("billing");
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000"]);
        await channel.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));

        // Complete (claims known) well before the router forgets the call, when a tally would otherwise come.
        await WaitForCdrs(1, Retention - TimeSpan.FromSeconds(2));
        var row = Assert.Single(await Cdrs());
        Assert.Equal((2, CallStatus.Success), (row.Claims, row.Status));
        Assert.Contains(row.Winner, new[] { "sales", "billing" });

        // A third claim (billing again): counted and rejected, and the tally at forget time carries the new count.
        var loser = row.Winner == "sales" ? billing : sales;
        var again = await loser.Claim(row.CallId);
        Assert.Equal(RejectReason.AlreadyClaimed, again.Reason);
        int? claims = null;
        await Eventually.True(async () => (claims = (await Cdrs()).Single().Claims) == 3, Retention + TimeSpan.FromSeconds(10),
            () => $"claims stayed {claims}");
        Assert.Single(await Cdrs());
    }
}
