using System.Text;
using System.Text.Json;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>infra/broker-definitions.sh on a fresh vhost: the router and adapter start on it, and app queues get TTL and dead-lettering.</summary>
public sealed class BrokerDefinitionsTests : RoutingTest
{
    private const string Script = "broker-definitions.sh";

    public BrokerDefinitionsTests() => Stack.Prepare = broker => broker.RunInfra(Script, [broker.Options.VirtualHost]);

    [Fact]
    public async Task The_definitions_match_the_code_and_app_queues_expire_into_dead_letters()
    {
        var broker = Stack.Broker;
        var vhost = broker.Options.VirtualHost;
        // The router and adapter started on the provisioned vhost, so their own declarations matched; running the
        // script again while they run changes nothing.
        await broker.RunInfra(Script, [vhost]);
        var app = await Stack.AddApp("x", target: new DialplanTarget("x-context", "s", 1));
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("x", channel.Variables[CallHandover.WinnerVariable]);
        var reply = await app.ClaimRaw("{nope"u8.ToArray());
        Assert.Equal(RejectReason.InvalidRequest, reply.Reason);
        await Eventually.True(async () => await broker.MessageCount(Topology.RouterErrorQueue) == 1, TimeSpan.FromSeconds(10), "bad claim not parked in the provisioned router_error");

        // The policy reaches a queue an app declared with no arguments; the heartbeat error queue is left alone.
        await Eventually.True(async () => (await broker.GetJson(broker.QueuePath("app.x"))).TryGetProperty("policy", out var p) && p.GetString() == "app-queues",
            TimeSpan.FromSeconds(30), "app.x never showed the app-queues policy");
        var effective = (await broker.GetJson(broker.QueuePath("app.x"))).GetProperty("effective_policy_definition");
        Assert.Equal(60000, effective.GetProperty("message-ttl").GetInt32());
        Assert.Equal("dead-letters", effective.GetProperty("dead-letter-exchange").GetString());
        var errors = await broker.GetJson(broker.QueuePath(Topology.HeartbeatExchange + "_error"));
        Assert.True(errors.GetProperty("policy").ValueKind == JsonValueKind.Null, errors.GetProperty("policy").ToString());

        // A message that expires in an app queue (here by its own expiration, as broadcasts do) is dead-lettered.
        var o = broker.Options;
        var factory = new ConnectionFactory { HostName = o.Host, Port = o.Port, VirtualHost = vhost, UserName = o.User, Password = o.Password };
        await using var connection = await factory.CreateConnectionAsync();
        await using var amqp = await connection.CreateChannelAsync();
        await amqp.QueueDeclareAsync("app.idle", durable: true, exclusive: false, autoDelete: false);
        await amqp.BasicPublishAsync("", "app.idle", false, new BasicProperties { Expiration = "1" }, Encoding.UTF8.GetBytes("stale broadcast"));
        await Eventually.True(async () => await broker.MessageCount("dead-letters") == 1, TimeSpan.FromSeconds(10), "expired message not dead-lettered");
        var dead = await broker.GetQueueMessages("dead-letters");
        Assert.Contains("stale broadcast", dead);
        Assert.Contains("\"reason\":\"expired\"", dead);
        Assert.Contains("\"queue\":\"app.idle\"", dead);

        // And by the policy's TTL alone (set short here; the default is the 60 s of the longest broadcast).
        await broker.RunInfra(Script, [vhost], new Dictionary<string, string> { ["APP_QUEUE_TTL_MS"] = "50" });
        await Eventually.True(async () => (await broker.GetJson(broker.QueuePath("app.idle"))).TryGetProperty("effective_policy_definition", out var d)
            && d.ValueKind == JsonValueKind.Object && d.TryGetProperty("message-ttl", out var ttl) && ttl.GetInt32() == 50,
            TimeSpan.FromSeconds(30), "the new TTL never reached app.idle");
        await amqp.BasicPublishAsync("", "app.idle", false, new BasicProperties(), Encoding.UTF8.GetBytes("no expiration of its own"));
        await Eventually.True(async () => await broker.MessageCount("dead-letters") == 2, TimeSpan.FromSeconds(10), "message not expired by the policy");
        Assert.Contains("no expiration of its own", await broker.GetQueueMessages("dead-letters"));
    }
}
