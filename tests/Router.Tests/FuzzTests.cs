using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>
/// Real calls are routed while thousands of random and malformed messages hit everything an app can reach (the claim
/// and heartbeat exchanges), from the stack's user and from a real least-privilege app user. Seeded: FUZZ_SEED replays.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output) : RoutingTest
{
    private const int DefaultSeed = 20261123;
    private const int Calls = 120;
    private const int ClaimsPerCall = 84; // 10,080 claims in all
    private const int HeartbeatsPerCall = 84; // 10,080 heartbeats
    private static readonly string[] Racers = ["fz-a", "fz-b", "fz-c"];

    [Fact]
    public async Task Random_and_malformed_messages_change_no_decision_and_each_is_answered_and_parked()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), out var chosen) ? chosen : DefaultSeed;
        output.WriteLine($"fuzz seed: {seed} (FUZZ_SEED={seed} replays this run)");
        Console.WriteLine($"FuzzTests: seed {seed}");

        var rogueUser = await Stack.Broker.CreateAppUser("fz-rogue");
        var apps = new List<Demo.ClaimantApp>();
        foreach (var name in Racers)
            apps.Add(await Stack.AddApp(name, target: new DialplanTarget($"ctx-{name}", "s", 1)));
        await using var stackSender = await Sender.Start(Stack.Broker.Options);
        await using var rogueSender = await Sender.Start(rogueUser);
        var make = new Generator(new Random(seed), Stack.Broker.Options.User, rogueUser.User);

        var channels = new List<SimChannel>();
        var claims = new List<Sent>();
        var heartbeats = new List<Sent>();
        for (var i = 0; i < Calls; i++)
        {
            channels.Add(Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=15000", "filter=^fz-(a|b|c)$"]));
            var seen = apps[0].Broadcasts.Select(b => b.CallId).ToArray();
            for (var k = 0; k < ClaimsPerCall; k++)
            {
                var claim = make.Claim(seen);
                claims.Add(claim);
                await (claim.AsRogue ? rogueSender : stackSender).Publish(Topology.ClaimExchange, claim);
            }
            for (var k = 0; k < HeartbeatsPerCall; k++)
            {
                var heartbeat = make.Heartbeat();
                heartbeats.Add(heartbeat);
                await (heartbeat.AsRogue ? rogueSender : stackSender).Publish(Topology.HeartbeatExchange, heartbeat);
            }
        }
        foreach (var kind in claims.Concat(heartbeats).GroupBy(s => s.Kind).OrderBy(g => g.Key))
            output.WriteLine($"{kind.Key}: {kind.Count()}");
        output.WriteLine($"sent {claims.Count} claims ({claims.Count(c => c.Parked)} to be parked, {claims.Count(c => c.Allowed is not null)} with reply_to) and {heartbeats.Count} heartbeats");

        // Every real call is decided as if nothing else had happened: one winner among the racers, its own target.
        foreach (var channel in channels)
            await channel.Handover.WaitAsync(TimeSpan.FromSeconds(60));
        var callIds = channels.Select(c => Guid.Parse(c.Variables[CallHandover.CallIdVariable])).ToHashSet();
        await Eventually.True(() => apps.All(a => callIds.IsSubsetOf(a.Broadcasts.Select(b => b.CallId))), TimeSpan.FromSeconds(30),
            "an app never got some call's broadcast");
        // The winner's reply and the handover travel separately: wait for every call's acceptance before counting them.
        await Eventually.True(() => callIds.IsSubsetOf(apps.SelectMany(a => a.Replies).Where(r => r.Accepted && r.CallId is not null).Select(r => r.CallId!.Value)),
            TimeSpan.FromSeconds(30), "a winner was never told it won");
        var accepted = apps.SelectMany(a => a.Replies).Where(r => r.Accepted).ToList();
        foreach (var channel in channels)
        {
            var variables = channel.Variables;
            Assert.Equal(CallStatus.Success, variables[CallHandover.StatusVariable]);
            Assert.Equal(DispositionReason.Claimed, variables[CallHandover.ReasonVariable]);
            var winner = variables[CallHandover.WinnerVariable];
            Assert.Contains(winner, Racers);
            Assert.Equal($"ctx-{winner}", channel.ContinuedTo!.Context);
            var callId = Guid.Parse(variables[CallHandover.CallIdVariable]);
            var wins = accepted.Where(r => r.CallId == callId).ToList();
            Assert.Single(wins);
            Assert.Equal(winner, wins[0].App);
            foreach (var app in apps)
                Assert.Contains(app.Broadcasts, b => b.CallId == callId && b.Audience.Order().SequenceEqual(Racers));
        }

        // Every fuzz claim with a reply_to got its answer, never an acceptance.
        var expected = claims.Where(c => c.Allowed is not null).ToList();
        await Eventually.True(() => expected.All(c => (c.AsRogue ? rogueSender : stackSender).Replies.ContainsKey(c.CorrelationId)),
            TimeSpan.FromSeconds(60), "some fuzz claims were never answered");
        foreach (var claim in expected)
        {
            var reply = (claim.AsRogue ? rogueSender : stackSender).Replies[claim.CorrelationId];
            Assert.False(reply.Accepted, $"{claim.Kind} was accepted: {Encoding.UTF8.GetString(claim.Body)}");
            Assert.True(claim.Allowed!.Contains(reply.Reason!), $"{claim.Kind} got {reply.Reason} ({reply.Detail}); body {Describe(claim.Body)}");
        }
        Assert.Equal(expected.Count, stackSender.Replies.Count + rogueSender.Replies.Count);
        Assert.Equal(0, stackSender.Duplicates + rogueSender.Duplicates);

        // Exactly the malformed and forbidden ones are parked, with the rest of the flood decided by the saga.
        var parkedClaims = (uint)claims.Count(c => c.Parked);
        await Eventually.True(async () => await Stack.Broker.MessageCount(Topology.RouterErrorQueue) >= parkedClaims, TimeSpan.FromSeconds(60), "claims not parked");
        await Eventually.True(async () => await Stack.Broker.MessageCount(Topology.HeartbeatExchange + "_error") >= (uint)heartbeats.Count,
            TimeSpan.FromSeconds(60), "heartbeats not parked");

        // Router and adapter still run and decide; no forged heartbeat made anyone live or gone.
        var after = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=15000", "filter=^fz-(a|b|c)$"]);
        await after.Handover.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(CallStatus.Success, after.Variables[CallHandover.StatusVariable]);
        Assert.Equal(parkedClaims, await Stack.Broker.MessageCount(Topology.RouterErrorQueue));
        Assert.Equal((uint)heartbeats.Count, await Stack.Broker.MessageCount(Topology.HeartbeatExchange + "_error"));
        var live = Stack.Adapter!.Services.GetRequiredService<LiveApps>();
        Assert.All(Racers, racer => Assert.True(live.IsLive(racer), racer));
        Assert.False(live.IsLive(Generator.Ghost));
        Assert.False(live.IsLive(rogueUser.User));
    }

    private static string Describe(byte[] body) => body.Length > 200 ? $"{body.Length} bytes" : Convert.ToBase64String(body);

    /// <summary>One fuzz message: what was sent, whether it must be parked, and which answers are right (null: no reply_to).</summary>
    private sealed record Sent(string Kind, byte[] Body, BasicProperties Properties, bool AsRogue, bool Parked, string[]? Allowed)
    {
        public string CorrelationId => Properties.CorrelationId ?? "";
    }

    /// <summary>Makes fuzz messages from one seeded random source.</summary>
    private sealed class Generator(Random random, string stackUser, string rogue)
    {
        public const string Ghost = "fz-ghost";
        private static readonly string[] Invalid = [RejectReason.InvalidRequest];
        private static readonly string[] Forbidden = [RejectReason.Forbidden];
        private static readonly string[] NotFound = [RejectReason.NotFound];
        private static readonly string[] Outsider = [RejectReason.InvalidRequest, RejectReason.AlreadyClaimed, RejectReason.Finished, RejectReason.NotFound];
        private static readonly string?[] ContentTypes =
            [null, "application/json", "text/plain", "application/octet-stream", "application/vnd.masstransit+json", "application/json; charset=utf-16", "%%bad%%", ""];
        private static readonly string?[] Encodings = [null, null, "gzip", "utf-16", "base64"];
        private static readonly string?[] Types = [null, null, "ClaimCall", "CallBroadcast", "CallEnded", "junk"];

        public Sent Claim(Guid[] seen)
        {
            // As many draws whatever the timing, so a seed always makes the same kinds of messages in the same order.
            var real = random.Next(3) > 0;
            var pick = random.Next(int.MaxValue);
            var fresh = NewGuid();
            var callId = real && seen.Length > 0 ? seen[pick % seen.Length] : fresh;
            var racer = Racers[random.Next(Racers.Length)];
            var asRogue = random.Next(2) == 0;
            switch (random.Next(10))
            {
                case 0:
                    return Make("claim: random bytes", RandomBytes(random.Next(0, 400)), asRogue, true, Invalid);
                case 1:
                {
                    var whole = Wire.Serialize(new ClaimCall(callId, racer, new DialplanTarget("ctx", "s", 1)));
                    return Make("claim: truncated JSON", Truncated(whole), asRogue, true, Invalid);
                }
                case 2:
                    return Make("claim: wrong types", Text(Pick(WrongTypes(callId, racer))), asRogue, true, Invalid);
                case 3:
                    return Make("claim: huge strings", Text(Pick(Huge(callId, racer))), asRogue, true, Invalid);
                case 4:
                    return Make("claim: wrong fields", Text(Pick(WrongFields(callId, racer))), asRogue, true, Invalid);
                case 5:
                    return Make("claim: invalid app name", Text($$"""{"callId":"{{callId}}","app":{{JsonSerializer.Serialize(Pick(BadNames))}}}"""), asRogue, true, Invalid);
                case 6:
                    return Make("claim: no user_id", Wire.Serialize(new ClaimCall(callId, racer)), asRogue, true, Forbidden, userId: false);
                case 7:
                {
                    // The rogue user claiming for a racer, sometimes dressed as one of our own typed messages.
                    var body = random.Next(3) == 0
                        ? Text($$"""{"callId":"{{callId}}","app":"{{rogue}}","app":"{{racer}}"}""")
                        : Wire.Serialize(new ClaimCall(callId, random.Next(4) == 0 ? Ghost : racer, new DialplanTarget("stolen", "s", 1)));
                    var sent = Make("claim: forged by another user", body, true, true, Forbidden);
                    if (random.Next(2) == 0)
                        sent.Properties.Headers = new Dictionary<string, object?> { [Topology.MessageTypeHeader] = Topology.MessageTypeUrn(Topology.Types.ClaimCall) };
                    return sent;
                }
                case 8:
                {
                    // From the app's owner, for a call nobody broadcast.
                    var app = asRogue ? rogue : Pick([racer, Ghost, "anyone"]);
                    return Make("claim: unknown call", Wire.Serialize(new ClaimCall(NewGuid(), app)), asRogue, false, NotFound);
                }
                default:
                {
                    // From the app's owner, for a real call it was not offered.
                    var app = asRogue ? rogue : "intruder";
                    return Make("claim: real call, app not offered it", Wire.Serialize(new ClaimCall(callId, app)), asRogue, false, Outsider);
                }
            }
        }

        public Sent Heartbeat()
        {
            var asRogue = random.Next(2) == 0;
            return random.Next(7) switch
            {
                0 => Make("heartbeat: random bytes", RandomBytes(random.Next(0, 300)), asRogue, true, null),
                1 => Make("heartbeat: truncated JSON", Truncated(Text("""{"app":"fz-a","status":"stopping"}""")), asRogue, true, null),
                2 => Make("heartbeat: wrong types", Text(Pick(["""{"app":5}""", """{"app":["fz-a"]}""", """{"app":"fz-a","status":7}""", """{"app":"fz-a","instance":{}}""", "[]", "null", "\"fz-a\""])), asRogue, true, null),
                3 => Make("heartbeat: huge", Text($$"""{"app":"fz-a","instance":"{{new string('i', 20_000)}}"}"""), asRogue, true, null),
                4 => Make("heartbeat: invalid app name", Wire.Serialize(new AppHeartbeat(Pick(BadNames))), asRogue, true, null),
                5 => Make("heartbeat: forged by another user", Wire.Serialize(new AppHeartbeat(Pick([Ghost, "fz-a"]), Status: Pick<string?>([null, "stopping"]))), true, true, null),
                _ => Make("heartbeat: no user_id", Wire.Serialize(new AppHeartbeat(asRogue ? rogue : Ghost)), asRogue, true, null, userId: false),
            };
        }

        private Sent Make(string kind, byte[] body, bool asRogue, bool parked, string[]? allowed, bool userId = true)
        {
            var claim = allowed is not null;
            var withReply = claim && random.Next(4) > 0;
            var properties = new BasicProperties
            {
                ContentType = Pick(ContentTypes),
                ContentEncoding = Pick(Encodings),
                Type = Pick(Types),
                CorrelationId = withReply ? NewGuid().ToString("N") : Pick<string?>([null, "no-reply"]),
                UserId = userId && random.Next(6) > 0 ? (asRogue ? rogue : stackUser) : null,
            };
            if (properties.UserId is null && !parked)
                properties.UserId = asRogue ? rogue : stackUser; // a well-formed claim must stay well-formed here
            if (random.Next(5) == 0)
                properties.Headers = new Dictionary<string, object?> { ["x-junk"] = random.Next(), [Topology.MessageTypeHeader] = "urn:message:Nope" };
            // ReplyTo is set by the sender, which knows its reply queue.
            return new Sent(kind, body, properties, asRogue, parked, withReply ? allowed : null);
        }

        private T Pick<T>(IReadOnlyList<T> items) => items[random.Next(items.Count)];

        private byte[] RandomBytes(int length)
        {
            var bytes = new byte[length];
            random.NextBytes(bytes);
            return bytes;
        }

        private static byte[] Text(string text) => Encoding.UTF8.GetBytes(text);

        private Guid NewGuid() => new(RandomBytes(16));

        private byte[] Truncated(byte[] whole) => whole[..random.Next(whole.Length)];

        private static readonly string[] BadNames = ["bad.name", "_reserved", "", "a b", "fz-ä", "#", "fz-a.*", new string('n', 65)];

        private static string[] WrongTypes(Guid callId, string app) =>
        [
            $$"""{"callId":123,"app":"{{app}}"}""",
            $$"""{"callId":true,"app":"{{app}}"}""",
            $$"""{"callId":{"id":"{{callId}}"},"app":"{{app}}"}""",
            $$"""{"callId":"{{callId}}","app":42}""",
            $$"""{"callId":"{{callId}}","app":["{{app}}"]}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","target":"ctx,s,1"}""",
            $$$"""{"callId":"{{{callId}}}","app":"{{{app}}}","target":{"context":"x","extension":"s","priority":"one"}}""",
            $$$"""{"callId":"{{{callId}}}","app":"{{{app}}}","target":{"context":"x","extension":"s","priority":0}}""",
            $$$"""{"callId":"{{{callId}}}","app":"{{{app}}}","target":{"context":"x","extension":"s","priority":1.5}}""",
            $$$"""{"callId":"{{{callId}}}","app":"{{{app}}}","target":{"context":7,"extension":"s"}}""",
            $$$"""{"callId":"{{{callId}}}","app":"{{{app}}}","target":{"context":" ","extension":"s"}}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","appArgs":"a,b"}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","appArgs":[1,2]}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","appArgs":["a,b"]}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","appArgs":[{{string.Join(',', Enumerable.Repeat("\"x\"", 40))}}]}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","moveToApp":5}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","moveToApp":"a,b"}""",
            $$$"""{"callId":"{{{callId}}}","app":"{{{app}}}","moveToApp":"ari","target":{"context":"x","extension":"s"}}""",
            $$"""{"callId":"not-a-uuid","app":"{{app}}"}""",
        ];

        private static string[] Huge(Guid callId, string app) =>
        [
            $$"""{"callId":"{{callId}}","app":"{{app}}","pad":"{{new string('x', 17_000)}}"}""",
            $$"""{"callId":"{{callId}}","app":"{{new string('a', 300)}}"}""",
            $$$"""{"callId":"{{{callId}}}","app":"{{{app}}}","target":{"context":"{{{new string('c', 5000)}}}","extension":"s"}}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","moveToApp":"{{new string('m', 1000)}}"}""",
            $$"""{"callId":"{{callId}}","app":"{{app}}","appArgs":["{{new string('g', 300)}}"]}""",
        ];

        private static string[] WrongFields(Guid callId, string app) =>
        [
            "{}",
            """{"foo":1}""",
            $$"""{"callId":"{{callId}}"}""",
            $$"""{"app":"{{app}}"}""",
            $$"""{"CallId":"{{callId}}","App":"{{app}}"}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1","status":"ABANDONED","reason":"caller-hangup","endedAt":"2026-01-01T00:00:00Z"}""",
            $$$"""{"messageType":["{{{Topology.MessageTypeUrn(Topology.Types.ClaimCall)}}}"],"message":{"callId":"{{{callId}}}","app":"{{{app}}}"}}""",
            "123", "\"claim\"", "null", "true", "[]",
            new string('[', 500) + new string(']', 500),
            $$"""{"callId":"{{callId}}","app":"{{app}}"} trailing""",
        ];
    }

    /// <summary>A connection as one broker user that publishes fuzz messages and collects the router's answers on a server-named reply queue.</summary>
    private sealed class Sender : IAsyncDisposable
    {
        private IConnection _connection = null!;
        private IChannel _publish = null!;
        private string _replyQueue = "";
        private int _duplicates;

        /// <summary>Answers that came for a correlation id already answered.</summary>
        public int Duplicates => Volatile.Read(ref _duplicates);

        public ConcurrentDictionary<string, ClaimReply> Replies { get; } = new();

        public static async Task<Sender> Start(BrokerOptions o)
        {
            var sender = new Sender();
            var factory = o.Factory("test FuzzTests");
            sender._connection = await factory.CreateConnectionAsync();
            sender._publish = await sender._connection.CreateChannelAsync();
            var replies = await sender._connection.CreateChannelAsync();
            sender._replyQueue = (await replies.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
            var consumer = new AsyncEventingBasicConsumer(replies);
            consumer.ReceivedAsync += (_, delivery) =>
            {
                var reply = JsonSerializer.Deserialize<ClaimReply>(delivery.Body.Span, Wire.Json)!;
                if (!sender.Replies.TryAdd(delivery.BasicProperties.CorrelationId ?? "", reply))
                    Interlocked.Increment(ref sender._duplicates);
                return Task.CompletedTask;
            };
            await replies.BasicConsumeAsync(sender._replyQueue, true, consumer);
            return sender;
        }

        public async Task Publish(string exchange, Sent message)
        {
            if (message.Allowed is not null)
                message.Properties.ReplyTo = _replyQueue;
            await _publish.BasicPublishAsync(exchange, "", false, message.Properties, message.Body);
        }

        public async ValueTask DisposeAsync()
        {
            await _connection.CloseAsync();
            _connection.Dispose();
        }
    }
}
