using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Demo;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>Several apps claiming every call at once: exactly one winner per call.</summary>
public sealed class RaceTests : RoutingTest
{
    [Fact]
    public async Task Five_apps_racing_on_1000_calls_get_exactly_one_winner_each_and_every_other_claim_is_rejected_as_already_claimed()
    {
        var wins = await Race.Run(Stack, apps: 5, calls: 1000);
        Assert.Equal(1000, wins.Values.Sum());
    }
}

/// <summary>With a claim window, apps that claim at once win equally often, whatever the broker's delivery order.</summary>
public sealed class FairnessTests : RoutingTest
{
    public FairnessTests() => Stack.RouterSettings["Router:ClaimWindow"] = "00:00:00.005";

    [Fact]
    public async Task With_a_claim_window_five_racing_apps_each_win_a_fair_share_and_still_exactly_one_wins_each_call()
    {
        const int calls = 500;
        var wins = await Race.Run(Stack, apps: 5, calls);

        // A fair draw gives each app 100 ± 9 (one standard deviation); 40 is more than six below.
        Assert.All(wins, w => Assert.True(w.Value >= 40, $"{w.Key} won {w.Value} of {calls}: {string.Join(", ", wins.Select(x => $"{x.Key}={x.Value}"))}"));
    }
}

/// <summary>Runs a claim race and checks its invariants; returns the wins per app.</summary>
internal static class Race
{
    public static async Task<Dictionary<string, int>> Run(RoutingStack stack, int apps, int calls)
    {
        var racers = new List<ClaimantApp>();
        for (var i = 1; i <= apps; i++)
            racers.Add(await stack.AddApp($"racer-{i}"));

        var channels = new List<AriSimulator.SimChannel>();
        for (var i = 0; i < calls; i++)
        {
            channels.Add(stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=10000"]));
            if (i % 50 == 49)
                await Task.Delay(100);
        }
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(60));
        await Eventually.True(() => racers.Sum(a => a.Replies.Count) == calls * apps, TimeSpan.FromSeconds(30),
            $"expected {calls * apps} replies, got {racers.Sum(a => a.Replies.Count)}");

        var replies = racers.SelectMany(a => a.Replies).ToList();
        var accepted = replies.Where(r => r.Accepted).ToList();
        Assert.Equal(calls, accepted.Count);
        Assert.Equal(calls, accepted.Select(r => r.CallId).Distinct().Count());
        Assert.All(replies.Where(r => !r.Accepted), r => Assert.Equal(RejectReason.AlreadyClaimed, r.Reason));

        var winnerByCall = accepted.ToDictionary(r => r.CallId!.Value.ToString(), r => r.App);
        Assert.All(replies.Where(r => !r.Accepted), r => Assert.Equal(winnerByCall[r.CallId!.Value.ToString()], r.Winner));
        foreach (var channel in channels)
        {
            Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
            Assert.Equal(winnerByCall[channel.Variables[CallHandover.CallIdVariable]], channel.Variables[CallHandover.WinnerVariable]);
        }
        return racers.ToDictionary(a => a.Name, a => accepted.Count(r => r.App == a.Name));
    }
}
