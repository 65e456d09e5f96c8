using System.Collections.Concurrent;
using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Demo;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Dapper;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>Several router processes on one queue, saga state in PostgreSQL with optimistic concurrency, durable timers.</summary>
public sealed class MultiRouterTests(ITestOutputHelper output) : PostgresStackTest
{
    private static readonly string[] Racers = ["alpha", "bravo", "charlie", "delta", "echo"];
    private readonly List<RouterProcess> _routers = [];

    protected override bool SagasInPostgres => true;

    protected override void Configure(RoutingStack stack)
    {
        stack.RouterInProcess = false;
        // Decided calls are remembered long enough for every loser's claim to find them even with a queue backlog.
        stack.RouterSettings["Router:FinishedRetention"] = "00:00:05";
        stack.AdapterSettings["Adapter:TallyWait"] = "00:00:30";
        // Whose verdict a timeout is (the router's no-claim, or the adapter's router-no-answer) is what some tests here
        // check: a box loaded by the rest of the suite may take more than the default 500 ms to decide 40 deadlines at once.
        stack.AdapterSettings["Adapter:FallbackGrace"] = "00:00:02";
        stack.RouterSettings["Router:AdapterFallbackGrace"] = "00:00:02";
    }

    [Fact]
    public async Task Two_router_processes_give_each_of_10000_calls_raced_by_5_apps_exactly_one_winner()
    {
        await StartRouters(2);
        // Neither router holds more than it handles at once (Router:PrefetchCount's default with several routers): a
        // broadcast left in one router's buffer while the other takes its call's claims gets them answered not-found.
        // The management API lists consumers a moment after the queue counts them.
        await Eventually.True(async () => (await RouterQueuePrefetches()).Length == 2, TimeSpan.FromSeconds(30),
            "the management API never listed both routers' consumers");
        var prefetches = await RouterQueuePrefetches();
        Assert.Equal(new[] { 64, 64 }, prefetches);
        var apps = await AddApps(Racers);

        var channels = await Originate(10_000, _ => ["timeout=10000"], maxOpen: 200);

        await Eventually.True(() => apps.Sum(a => a.Replies.Count) >= 50_000, TimeSpan.FromSeconds(60), "not every claim was answered");
        var winners = WinnersFromChannels(channels);
        Assert.Equal(10_000, winners.Count);
        Assert.All(channels, c => Assert.Equal(CallStatus.Success, c.Variables[CallHandover.StatusVariable]));
        var accepted = AcceptedApps(apps);
        Assert.Equal(10_000, accepted.Count);
        Assert.All(accepted, a => Assert.Equal(winners[a.Key], Assert.Single(a.Value)));
        var rejected = apps.SelectMany(a => a.Replies).Where(r => !r.Accepted).ToList();
        Assert.Equal(40_000, rejected.Count);
        Assert.All(rejected, r => Assert.Equal(RejectReason.AlreadyClaimed, r.Reason));

        await WaitForCdrs(10_000, TimeSpan.FromSeconds(120));
        var rows = await Cdrs();
        Assert.Equal(10_000, rows.Select(r => r.CallId).Distinct().Count());
        Assert.All(rows, r => Assert.Equal((winners[r.CallId], 5, CallStatus.Success), (r.Winner, r.Claims ?? -1, r.Status)));
        output.WriteLine($"wins: {string.Join(", ", rows.GroupBy(r => r.Winner).Select(g => $"{g.Key} {g.Count()}"))}");
    }

    [Fact]
    public async Task A_router_killed_mid_run_leaves_no_call_stranded_and_every_call_gets_its_row()
    {
        await StartRouters(2);
        var apps = await AddApps(["alpha", "bravo", "charlie"]);
        await Stack.AddApp("quiet", autoClaim: false);

        var killed = Task.Run(async () =>
        {
            await Task.Delay(TimeSpan.FromSeconds(4));
            _routers[0].KillHard();
        });
        // Every fifth call goes to an app that never claims: those end TIMEOUT.
        var channels = await Originate(1_000, i => i % 5 == 0 ? ["timeout=1500", "filter=^quiet$"] : ["timeout=3000", "filter=^(alpha|bravo|charlie)$"],
            maxOpen: 100, perSecond: 125);
        await killed;

        // A won call can reach the dialplan before its winner hears `accepted`: the router killed between sending the
        // decision and the reply leaves the reply to the survivor, which answers the redelivered claim.
        var won = channels.Where(c => c.Variables[CallHandover.StatusVariable] == CallStatus.Success)
            .Select(c => Guid.Parse(c.Variables[CallHandover.CallIdVariable])).ToList();
        await Eventually.True(() => won.All(AcceptedApps(apps).ContainsKey), TimeSpan.FromSeconds(30),
            () => $"{won.Count(id => !AcceptedApps(apps).ContainsKey(id))} won calls never had their winner told accepted");
        var accepted = AcceptedApps(apps);
        var toldButFellBack = new List<(Guid CallId, string App)>();
        foreach (var channel in channels)
        {
            var status = channel.Variables[CallHandover.StatusVariable];
            var reason = channel.Variables[CallHandover.ReasonVariable];
            var callId = Guid.Parse(channel.Variables[CallHandover.CallIdVariable]);
            var told = accepted.GetValueOrDefault(callId) ?? [];
            if (channel.StasisArgs.Contains("filter=^quiet$"))
                Assert.Contains((status, reason), new[] { (CallStatus.Timeout, DispositionReason.NoClaim), (CallStatus.Timeout, DispositionReason.RouterNoAnswer) });
            else if (status == CallStatus.Success)
                Assert.Equal(channel.Variables[CallHandover.WinnerVariable], Assert.Single(told));
            else
                // The adapter fell back alone (the router holding the call was killed), or the surviving router got the
                // claims only after the call's window (redelivered from the killed one): no-claim, and nobody was told accepted.
                Assert.Contains((status, reason), new[] { (CallStatus.Timeout, DispositionReason.RouterNoAnswer), (CallStatus.Timeout, DispositionReason.NoClaim) });
            if (status != CallStatus.Success)
            {
                // A decision that reached the adapter after its own fallback (the machine is loaded on purpose): the app
                // told `accepted` must then hear CallFailed for that call (checked below); never two apps told.
                Assert.True(told.Count <= 1, $"{told.Count} apps told accepted");
                toldButFellBack.AddRange(told.Select(app => (callId, app)));
            }
        }
        await Eventually.True(() => toldButFellBack.All(t => apps.Single(a => a.Name == t.App).FailedNotices.Any(n => n.CallId == t.CallId)),
            TimeSpan.FromSeconds(30), "an app told accepted for a call that fell back was never told CallFailed");
        output.WriteLine($"told accepted, then the call fell back and the app heard CallFailed: {toldButFellBack.Count}");
        output.WriteLine(string.Join(", ", channels.GroupBy(c => c.Variables[CallHandover.StatusVariable] + "/" + c.Variables[CallHandover.ReasonVariable])
            .Select(g => $"{g.Key} {g.Count()}")));

        // Every call gets its row; a tally the killed router had not sent yet leaves that row's claims null, as documented.
        await WaitForCdrs(1_000, TimeSpan.FromSeconds(60), complete: false);
        var rows = await Cdrs();
        Assert.Equal(channels.Select(c => c.Id).Order(), rows.Select(r => r.ChannelId).Order());
        Assert.All(rows, r => Assert.Equal(channels.Single(c => c.Id == r.ChannelId).Variables[CallHandover.StatusVariable], r.Status));
    }

    [Fact]
    public async Task Deadlines_set_by_a_router_that_died_still_fire_from_the_broker()
    {
        await StartRouters(2);
        await Stack.AddApp("sales", autoClaim: false);
        var channels = Enumerable.Range(0, 40).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=2500"])).ToList();
        await Eventually.True(async () => await OpenSagas() == 40, TimeSpan.FromSeconds(10), "the routers did not take all 40 broadcasts");

        _routers[0].KillHard();
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(10));

        // TIMEOUT/no-claim is the router's own verdict at the deadline; the adapter's fallback would say router-no-answer.
        Assert.All(channels, c => Assert.Equal((CallStatus.Timeout, DispositionReason.NoClaim),
            (c.Variables[CallHandover.StatusVariable], c.Variables[CallHandover.ReasonVariable])));
    }

    [Fact]
    public async Task Claims_that_overtake_their_broadcast_are_decided_by_two_routers_with_no_false_not_found()
    {
        await StartRouters(2);
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var support = await Stack.AddApp("support", autoClaim: false);
        var o = Stack.Broker.Options;
        var factory = new RabbitMQ.Client.ConnectionFactory { HostName = o.Host, Port = o.Port, VirtualHost = o.VirtualHost, UserName = o.User, Password = o.Password };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();

        // Both claims of each call go out first (the two routers take them in turns), the broadcast 100 ms later.
        var calls = new List<(Task<ClaimReply> Sales, Task<ClaimReply> Support)>();
        for (var i = 0; i < 20; i++)
        {
            var callId = Guid.NewGuid();
            calls.Add((sales.Claim(callId), support.Claim(callId)));
            await Task.Delay(100);
            var now = DateTimeOffset.UtcNow;
            var broadcast = new CallBroadcast(callId, $"chan-{i}", "Local/1@x", "1", "A", "1000", "from-test", [], "ghost-node", "ast", null, false,
                ["sales", "support"], now, now, now.AddSeconds(5), 5000);
            await TestBroker.PublishToRouter(channel, broadcast);
        }

        foreach (var (salesReply, supportReply) in calls)
        {
            var replies = await Task.WhenAll(salesReply, supportReply).WaitAsync(TimeSpan.FromSeconds(10));
            var winner = Assert.Single(replies, r => r.Accepted);
            var loser = Assert.Single(replies, r => !r.Accepted);
            Assert.Equal((RejectReason.AlreadyClaimed, winner.App), (loser.Reason, loser.Winner));
        }
    }

    private async Task<int[]> RouterQueuePrefetches()
    {
        var consumers = await Stack.Broker.GetJson($"consumers/{Uri.EscapeDataString(Stack.Broker.Options.VirtualHost)}");
        return [.. consumers.EnumerateArray()
            .Where(c => c.GetProperty("queue").GetProperty("name").GetString() == Topology.RouterQueue)
            .Select(c => c.GetProperty("prefetch_count").GetInt32())];
    }

    private async Task StartRouters(int count)
    {
        for (var i = 0; i < count; i++)
            _routers.Add(await Stack.StartRouterProcess($"router-{i + 1}"));
    }

    private async Task<List<ClaimantApp>> AddApps(IEnumerable<string> names)
    {
        var apps = new List<ClaimantApp>();
        foreach (var name in names)
            apps.Add(await Stack.AddApp(name));
        return apps;
    }

    private async Task<List<SimChannel>> Originate(int calls, Func<int, string[]> args, int maxOpen, int perSecond = 0)
    {
        using var open = new SemaphoreSlim(maxOpen);
        var channels = new List<SimChannel>(calls);
        var started = DateTime.UtcNow;
        for (var i = 0; i < calls; i++)
        {
            await open.WaitAsync();
            if (perSecond > 0 && started.AddSeconds((double)i / perSecond) is var due && due > DateTime.UtcNow)
                await Task.Delay(due - DateTime.UtcNow);
            var channel = Stack.Ari.Originate(RoutingStack.StasisApp, args(i));
            _ = channel.Handover.ContinueWith(_ => open.Release(), TaskScheduler.Default);
            channels.Add(channel);
        }
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(180));
        output.WriteLine($"{calls} calls handed over in {(DateTime.UtcNow - started).TotalSeconds:F1} s");
        return channels;
    }

    private static Dictionary<Guid, string> WinnersFromChannels(IEnumerable<SimChannel> channels) =>
        channels.Where(c => c.Variables.ContainsKey(CallHandover.WinnerVariable))
            .ToDictionary(c => Guid.Parse(c.Variables[CallHandover.CallIdVariable]), c => c.Variables[CallHandover.WinnerVariable]);

    /// <summary>Per call, the distinct apps that were told "accepted".</summary>
    private static Dictionary<Guid, List<string>> AcceptedApps(IEnumerable<ClaimantApp> apps) =>
        apps.SelectMany(a => a.Replies).Where(r => r.Accepted)
            .GroupBy(r => r.CallId!.Value).ToDictionary(g => g.Key, g => g.Select(r => r.App ?? "").Distinct().ToList());

    private async Task<long> OpenSagas()
    {
        await using var connection = await Database.DataSource.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM call_sagas WHERE current_state = 'Open'");
    }

    public override async Task DisposeAsync()
    {
        foreach (var router in _routers)
            await router.DisposeAsync();
        await base.DisposeAsync();
    }
}
