using System.Text;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Demo;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// Apps with their own RabbitMQ users, made by infra/add-app-user.sh: the router and adapter take a claim or heartbeat
/// only from the user that owns its app, and the broker itself refuses what an app user has no right to do.
/// </summary>
public sealed class SecurityTests : RoutingTest
{
    private const ushort AccessRefused = 403;
    private const ushort PreconditionFailed = 406;

    [Fact]
    public async Task A_claim_forged_for_another_app_is_forbidden_and_never_wins_and_the_real_app_then_wins()
    {
        var userA = await Stack.Broker.CreateAppUser("sec-a");
        var userB = await Stack.Broker.CreateAppUser("sec-b");
        var (a, b) = (userA.User, userB.User);
        var appA = await Stack.AddApp(a, autoClaim: false, user: userA);
        var appB = await Stack.AddApp(b, autoClaim: false, user: userB);
        var offered = new TaskCompletionSource<CallBroadcast>(TaskCreationOptions.RunContinuationsAsynchronously);
        appA.BroadcastReceived += broadcast => offered.TrySetResult(broadcast);

        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=10000", $"filter=^({a}|{b})$"]);
        var call = await offered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([a, b], call.Audience.Order());
        var forged = Wire.Serialize(new ClaimCall(call.CallId, b, new DialplanTarget("stolen", "s", 1)));

        // user_id = appA (set by the app, checked by the broker), app = appB.
        var reply = await appA.ClaimRaw(forged);
        Assert.False(reply.Accepted);
        Assert.Equal(RejectReason.Forbidden, reply.Reason);
        Assert.Equal(b, reply.App);
        Assert.Contains($"RabbitMQ user '{a}' does not own app '{b}'", reply.Detail);

        // No user_id at all.
        reply = await appA.ClaimRaw(forged, properties: p => p.UserId = null);
        Assert.Equal(RejectReason.Forbidden, reply.Reason);
        Assert.Contains("has no user_id: set the AMQP user_id property", reply.Detail);

        // Dressed as one of our own typed messages (MassTransit's header and envelope content type): still an app's claim.
        reply = await appA.ClaimRaw(forged, properties: p =>
        {
            p.ContentType = "application/vnd.masstransit+json";
            p.Headers = new Dictionary<string, object?> { [Topology.MessageTypeHeader] = Topology.MessageTypeUrn(Topology.Types.ClaimCall) };
        });
        Assert.Equal(RejectReason.Forbidden, reply.Reason);
        reply = await appA.ClaimRaw(Encoding.UTF8.GetBytes(
            $$$"""{"messageType":["{{{Topology.MessageTypeUrn(Topology.Types.ClaimCall)}}}"],"message":{"callId":"{{{call.CallId}}}","app":"{{{b}}}"}}"""),
            properties: p => p.ContentType = "application/vnd.masstransit+json");
        Assert.Equal(RejectReason.InvalidRequest, reply.Reason);
        Assert.Contains("callId is missing", reply.Detail);

        // The broker refuses a user_id that is not the connection's user: the claim never reaches the router.
        await using (var connection = await Connect(userA))
        {
            var ch = await connection.CreateChannelAsync();
            await ch.BasicPublishAsync(Topology.ClaimExchange, "", false, new BasicProperties { UserId = b }, forged);
            var refused = await Assert.ThrowsAnyAsync<OperationInterruptedException>(() => ch.QueueDeclarePassiveAsync(Topology.AppQueue(a)));
            Assert.Equal(PreconditionFailed, refused.ShutdownReason!.ReplyCode);
            Assert.Contains($"user_id property set to '{b}' but authenticated user was '{a}'", refused.ShutdownReason.ReplyText);
        }

        // None of that counted as B's claim: B's own claim wins, A's own claim then loses to it.
        reply = await appB.Claim(call.CallId, new DialplanTarget("sales-b", "s", 1));
        Assert.True(reply.Accepted, reply.Detail);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(b, channel.Variables[CallHandover.WinnerVariable]);
        Assert.Equal("sales-b", channel.ContinuedTo!.Context);
        reply = await appA.Claim(call.CallId);
        Assert.Equal(RejectReason.AlreadyClaimed, reply.Reason);
        Assert.Equal(b, reply.Winner);

        // The four refused claims are parked with their reason.
        await Eventually.True(async () => await Stack.Broker.MessageCount(Topology.RouterErrorQueue) == 4, TimeSpan.FromSeconds(10), "refused claims not parked");
        var parked = await Stack.Broker.GetQueueMessages(Topology.RouterErrorQueue);
        Assert.Contains($"forbidden claim: RabbitMQ user '{a}' does not own app '{b}'", parked);
        Assert.Contains("forbidden claim: the claim has no user_id", parked);
        Assert.Contains($"\"x-original-user-id\":\"{a}\"", parked);
    }

    [Fact]
    public async Task A_heartbeat_for_an_app_the_user_does_not_own_is_parked_and_makes_nothing_live()
    {
        var userA = await Stack.Broker.CreateAppUser("sec-a");
        var userC = await Stack.Broker.CreateAppUser("sec-c");
        var (a, c) = (userA.User, userC.User);
        await Stack.AddApp(a, user: userA);
        await using (var connection = await Connect(userA))
        {
            var channel = await connection.CreateChannelAsync();
            await channel.BasicPublishAsync(Topology.HeartbeatExchange, "", false, new BasicProperties { UserId = a }, Wire.Serialize(new AppHeartbeat(c)));
            await channel.BasicPublishAsync(Topology.HeartbeatExchange, "", false, new BasicProperties(), Wire.Serialize(new AppHeartbeat(c)));
            // Nor may it take another app out of the audience.
            await channel.BasicPublishAsync(Topology.HeartbeatExchange, "", false, new BasicProperties { UserId = a }, Wire.Serialize(new AppHeartbeat("sales", Status: "stopping")));
        }
        var sales = await Stack.AddApp("sales", autoClaim: false);
        await Eventually.True(async () => await Stack.Broker.MessageCount(Topology.HeartbeatExchange + "_error") == 3, TimeSpan.FromSeconds(10), "heartbeats not parked");

        var parked = await Stack.Broker.GetQueueMessages(Topology.HeartbeatExchange + "_error");
        Assert.Contains($"RabbitMQ user '{a}' does not own app '{c}'", parked);
        Assert.Contains("the heartbeat has no user_id", parked);
        Assert.Contains($"RabbitMQ user '{a}' does not own app 'sales'", parked);
        Assert.Contains($"\"x-original-user-id\":\"{a}\"", parked);
        var live = Stack.Adapter!.Services.GetRequiredService<LiveApps>();
        Assert.False(live.IsLive(c));
        Assert.True(live.IsLive("sales"));
        Assert.True(live.IsLive(a));
    }

    [Fact]
    public async Task The_broker_refuses_an_app_user_everything_beyond_its_own_queue_claims_and_heartbeats()
    {
        var userA = await Stack.Broker.CreateAppUser("sec-a");
        var userB = await Stack.Broker.CreateAppUser("sec-b");
        var (a, b) = (userA.User, userB.User);
        await Stack.AddApp(a, autoClaim: false, user: userA);
        await Stack.AddApp(b, autoClaim: false, user: userB);
        var queueA = Topology.AppQueue(a);
        var queueB = Topology.AppQueue(b);

        // Topic permission: on call.broadcasts A may bind only with its own name as routing key.
        await Refused(userA, AccessRefused, $"access to topic '{b}' in exchange '{Topology.BroadcastExchange}'", ch => ch.QueueBindAsync(queueA, Topology.BroadcastExchange, b));
        await Refused(userA, AccessRefused, $"access to topic '#' in exchange '{Topology.BroadcastExchange}'", ch => ch.QueueBindAsync(queueA, Topology.BroadcastExchange, "#"));
        await Refused(userA, AccessRefused, $"access to topic '*' in exchange '{Topology.BroadcastExchange}'", ch => ch.QueueBindAsync(queueA, Topology.BroadcastExchange, "*"));
        // Nor any other queue (write on the destination queue), nor a queue of its own making to call.broadcasts.
        await Refused(userA, AccessRefused, $"queue '{queueB}'", ch => ch.QueueBindAsync(queueB, Topology.BroadcastExchange, b));
        await Refused(userA, AccessRefused, "queue 'amq.gen-", async ch =>
        {
            var own = await ch.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true);
            await ch.QueueBindAsync(own.QueueName, Topology.BroadcastExchange, a);
        });
        // Consuming, purging or declaring another app's queue.
        await Refused(userA, AccessRefused, $"queue '{queueB}'", ch => ch.BasicConsumeAsync(queueB, true, new AsyncEventingBasicConsumer(ch)));
        await Refused(userA, AccessRefused, $"queue '{queueB}'", ch => ch.QueueDeclareAsync(queueB, durable: true, exclusive: false, autoDelete: false));
        await Refused(userA, AccessRefused, $"queue '{Topology.RouterQueue}'", ch => ch.BasicConsumeAsync(Topology.RouterQueue, true, new AsyncEventingBasicConsumer(ch)));
        await Refused(userA, AccessRefused, $"queue '{queueB}'", ch => ch.QueuePurgeAsync(queueB));
        // Publishing anywhere but the claim and heartbeat exchanges: broadcasts, call events, router commands, the default exchange.
        await Refused(userA, AccessRefused, $"exchange '{Topology.BroadcastExchange}'", ch => Publish(ch, Topology.BroadcastExchange, b));
        await Refused(userA, AccessRefused, $"exchange '{Topology.EventExchange}'", ch => Publish(ch, Topology.EventExchange, ""));
        await Refused(userA, AccessRefused, $"exchange '{Topology.CommandExchange}'", ch => Publish(ch, Topology.CommandExchange, RoutingStack.Node));
        await Refused(userA, AccessRefused, "exchange 'amq.default'", ch => Publish(ch, "", Topology.RouterQueue));
        // Declaring or deleting the shared exchanges.
        await Refused(userA, AccessRefused, $"exchange '{Topology.ClaimExchange}'", ch => ch.ExchangeDeclareAsync(Topology.ClaimExchange, ExchangeType.Fanout, durable: true));
        await Refused(userA, AccessRefused, $"exchange '{Topology.BroadcastExchange}'", ch => ch.ExchangeDeleteAsync(Topology.BroadcastExchange));

        // What an app needs still works: its own queue and binding again (idempotent), a reply queue, consuming them.
        await using var connection = await Connect(userA);
        var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queueA, durable: true, exclusive: false, autoDelete: false);
        await channel.QueueBindAsync(queueA, Topology.BroadcastExchange, a);
        var replies = await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true);
        await channel.BasicConsumeAsync(replies.QueueName, true, new AsyncEventingBasicConsumer(channel));
        await channel.BasicConsumeAsync("amq.rabbitmq.reply-to", true, new AsyncEventingBasicConsumer(channel));
        await Publish(channel, Topology.HeartbeatExchange, "", new BasicProperties { UserId = a });
        await Publish(channel, Topology.ClaimExchange, "", new BasicProperties { UserId = a, ReplyTo = "amq.rabbitmq.reply-to" });
        await channel.QueueDeclarePassiveAsync(queueA); // the channel is still open: nothing above was refused
    }

    private static async Task Refused(BrokerOptions user, ushort code, string about, Func<IChannel, Task> action)
    {
        await using var connection = await Connect(user);
        var channel = await connection.CreateChannelAsync();
        // A publish is not answered; the channel's next request sees the refusal.
        var refused = await Assert.ThrowsAnyAsync<OperationInterruptedException>(async () =>
        {
            await action(channel);
            await channel.QueueDeclarePassiveAsync(Topology.AppQueue(user.User));
        });
        Assert.Equal(code, refused.ShutdownReason!.ReplyCode);
        Assert.Contains(about, refused.ShutdownReason.ReplyText);
    }

    private static Task Publish(IChannel channel, string exchange, string routingKey, BasicProperties? properties = null) =>
        channel.BasicPublishAsync(exchange, routingKey, false, properties ?? new BasicProperties(), "{}"u8.ToArray()).AsTask();

    private static Task<IConnection> Connect(BrokerOptions o) => new ConnectionFactory
    {
        HostName = o.Host, Port = o.Port, VirtualHost = o.VirtualHost, UserName = o.User, Password = o.Password,
    }.CreateConnectionAsync();
}
