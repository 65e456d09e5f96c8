using System.Diagnostics;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Router.Timers;
using CallRouter.Tests.Infrastructure;
using Dapper;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>Durable timers (sagas in PostgreSQL) use a fixed set of wait queues whatever timeouts the dialplan uses, and still fire on time.</summary>
public sealed class BrokerTimerTests : PostgresStackTest
{
    protected override bool SagasInPostgres => true;

    // A loaded machine must not make the adapter's fallback beat the router's timer: the point here is the wait queues.
    protected override void Configure(RoutingStack stack)
    {
        stack.AdapterSettings["Adapter:FallbackGrace"] = "00:00:05";
        stack.RouterSettings["Router:FinishedRetention"] = "00:00:03";
    }

    [Fact]
    public async Task Distinct_timeouts_share_a_bounded_set_of_wait_queues_and_each_call_times_out_at_its_deadline()
    {
        await Stack.AddApp("silent", autoClaim: false);
        int[] timeouts = [1001, 1234, 1500, 1777, 1999, 2001, 2345, 2750, 3001, 3333];
        var calls = timeouts.Select(t => (Timeout: t, Channel: Stack.Ari.Originate(RoutingStack.StasisApp, [$"timeout={t}"]))).ToList();
        await Task.WhenAll(calls.Select(c => c.Channel.Handover)).WaitAsync(TimeSpan.FromSeconds(20));

        if (await Stack.Broker.MessageCount(Topology.RouterSkippedQueue) > 0)
            Assert.Fail("timers were skipped: " + await Stack.Broker.GetQueueMessages(Topology.RouterSkippedQueue, 2));
        Assert.Equal(0u, await Stack.Broker.MessageCount(Topology.RouterErrorQueue));
        // The router decided each one (not the adapter's fallback at deadline + 500 ms), and none early.
        Assert.All(calls, c =>
        {
            Assert.True(c.Channel.Variables[CallHandover.StatusVariable] == CallStatus.Timeout, string.Join(",", c.Channel.Variables.Select(v => $"{v.Key}={v.Value}")));
            Assert.Equal(DispositionReason.NoClaim, c.Channel.Variables[CallHandover.ReasonVariable]);
            var after = Stopwatch.GetElapsedTime(c.Channel.StasisStartTimestamp, c.Channel.HandoverTimestamp).TotalMilliseconds;
            Assert.True(after >= c.Timeout, $"the {c.Timeout} ms call timed out after {after:F0} ms");
        });

        var queues = (await Stack.Broker.GetJson($"queues/{Uri.EscapeDataString(Stack.Broker.Options.VirtualHost)}"))
            .EnumerateArray().Select(q => q.GetProperty("name").GetString()!).Where(n => n.StartsWith(Topology.TimerExchange + ".")).ToList();
        var allowed = BrokerCallTimers.Buckets.Select(Topology.TimerQueue).ToHashSet();
        Assert.All(queues, q => Assert.Contains(q, allowed)); // one queue per distinct delay would include router.timers.1001ms
        Assert.Equal(45, allowed.Count);
        Assert.NotEmpty(queues);
    }

    [Fact]
    public async Task A_won_call_gets_one_decision_however_its_deadline_comes_back_through_the_broker()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        await using var connection = await Stack.Broker.Options.Factory("test BrokerTimerTests").CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var commands = (await channel.QueueDeclareAsync("", exclusive: true)).QueueName;
        await channel.QueueBindAsync(commands, Topology.CommandExchange, "ghost-node");

        // A 1 s deadline: it comes back from its wait queue after the claim has won, and before the call is forgotten
        // (Router__FinishedRetention, 3 s after the decision), both through the router queue in due order.
        var callId = Guid.NewGuid();
        var now = DateTimeOffset.UtcNow;
        var broadcast = new CallBroadcast(callId, "chan-1", "Local/1@x", "1", "A", "1000", "from-test", [], "ghost-node", "ast", null, false,
            ["sales"], now, now, now.AddSeconds(1), 1000);
        await TestBroker.PublishToRouter(channel, broadcast);
        Assert.True((await sales.Claim(callId)).Accepted);

        await Eventually.True(async () => await SagaRows(callId) == 0, TimeSpan.FromSeconds(10), "the call was never forgotten");
        var sent = new List<string>();
        while (await channel.BasicGetAsync(commands, autoAck: true) is { } message)
            sent.Add(message.BasicProperties.Type!);
        Assert.Equal([Topology.Types.ClaimTallies, Topology.Types.ContinueCall], sent.Order());
    }

    private async Task<long> SagaRows(Guid callId)
    {
        await using var connection = await Database.DataSource.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM call_sagas WHERE correlation_id = @callId", new { callId });
    }
}
