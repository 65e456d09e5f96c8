using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>Several apps claiming every call at once: exactly one winner per call, fairly spread.</summary>
public sealed class RaceTests : RoutingTest
{
    [Fact]
    public async Task Five_apps_racing_on_1000_calls_get_exactly_one_winner_each_and_every_other_claim_is_rejected_as_already_claimed()
    {
        const int calls = 1000;
        var apps = new List<Demo.ClaimantApp>();
        for (var i = 1; i <= 5; i++)
            apps.Add(await Stack.AddApp($"racer-{i}"));

        var channels = new List<AriSimulator.SimChannel>();
        for (var i = 0; i < calls; i++)
        {
            channels.Add(Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=10000"]));
            if (i % 50 == 49)
                await Task.Delay(100);
        }
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(60));
        await Eventually.True(() => apps.Sum(a => a.Replies.Count) == calls * apps.Count, TimeSpan.FromSeconds(30),
            $"expected {calls * apps.Count} replies, got {apps.Sum(a => a.Replies.Count)}");

        var replies = apps.SelectMany(a => a.Replies).ToList();
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

        // Fair spread: with 5 apps each should win a real share, not one app nearly always.
        var wins = accepted.GroupBy(r => r.App).ToDictionary(g => g.Key!, g => g.Count());
        Assert.All(apps, app => Assert.True(wins.GetValueOrDefault(app.Name) >= calls / 25,
            $"{app.Name} won {wins.GetValueOrDefault(app.Name)} of {calls}: {string.Join(", ", wins.Select(w => $"{w.Key}={w.Value}"))}"));
    }
}
