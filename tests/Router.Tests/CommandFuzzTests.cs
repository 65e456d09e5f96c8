using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>
/// Real calls are routed while thousands of malformed commands (ContinueCall, ClaimTally and ClaimTallies garbage) reach the
/// adapter's command queue through call.commands with its node key: every one is parked in adapter.&lt;node&gt;_error
/// with x-error, none changes a call. Seeded: FUZZ_SEED replays.
/// </summary>
public sealed class CommandFuzzTests(ITestOutputHelper output) : RoutingTest
{
    private const int DefaultSeed = 20261128;
    private const int Calls = 120;
    private const int CommandsPerCall = 84; // 10,080 commands in all
    private static readonly string[] Racers = ["cf-a", "cf-b", "cf-c"];

    [Fact]
    public async Task Malformed_commands_to_the_adapter_are_all_parked_with_the_reason_while_calls_are_routed()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), out var chosen) ? chosen : DefaultSeed;
        output.WriteLine($"fuzz seed: {seed} (FUZZ_SEED={seed} replays this run)");
        Console.WriteLine($"CommandFuzzTests: seed {seed}");

        var apps = new List<Demo.ClaimantApp>();
        foreach (var name in Racers)
            apps.Add(await Stack.AddApp(name, target: new DialplanTarget($"ctx-{name}", "s", 1)));
        var o = Stack.Broker.Options;
        var factory = o.Factory("test CommandFuzzTests");
        await using var connection = await factory.CreateConnectionAsync();
        await using var publish = await connection.CreateChannelAsync();
        var make = new Generator(new Random(seed));

        var channels = new List<SimChannel>();
        var sent = new List<(string Kind, byte[] Body)>();
        for (var i = 0; i < Calls; i++)
        {
            channels.Add(Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=15000", "filter=^cf-(a|b|c)$"]));
            var seen = apps[0].Broadcasts.Select(b => b.CallId).ToArray();
            for (var k = 0; k < CommandsPerCall; k++)
            {
                var (kind, body, properties) = make.Command(seen);
                sent.Add((kind, body));
                await publish.BasicPublishAsync(Topology.CommandExchange, RoutingStack.Node, false, properties, body);
            }
        }
        foreach (var kind in sent.GroupBy(s => s.Kind).OrderBy(g => g.Key))
            output.WriteLine($"{kind.Key}: {kind.Count()}");

        // Every real call is decided as if nothing else had happened: one winner among the racers, its own target.
        foreach (var channel in channels)
            await channel.Handover.WaitAsync(TimeSpan.FromSeconds(60));
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
            Assert.Equal(winner, Assert.Single(accepted, r => r.CallId == callId).App);
        }

        // Every command sent is in the error queue, byte for byte, with the reason; nothing else is.
        var errorQueue = Topology.AdapterQueue(RoutingStack.Node) + "_error";
        var parked = new ConcurrentQueue<(byte[] Body, string? Error, string? RoutingKey)>();
        await using var consume = await connection.CreateChannelAsync();
        await consume.BasicQosAsync(0, 1000, false);
        var consumer = new AsyncEventingBasicConsumer(consume);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            var headers = delivery.BasicProperties.Headers;
            string? Header(string name) => headers?.TryGetValue(name, out var v) == true && v is byte[] b ? Encoding.UTF8.GetString(b) : null;
            parked.Enqueue((delivery.Body.ToArray(), Header("x-error"), Header("x-original-routing-key")));
            return Task.CompletedTask;
        };
        await consume.BasicConsumeAsync(errorQueue, autoAck: true, consumer);
        await Eventually.True(() => parked.Count >= sent.Count, TimeSpan.FromSeconds(60), $"only {parked.Count} of {sent.Count} commands were parked");

        // The adapter still runs and decides; no further command turned up in the error queue meanwhile.
        var after = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=15000", "filter=^cf-(a|b|c)$"]);
        await after.Handover.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(CallStatus.Success, after.Variables[CallHandover.StatusVariable]);
        Assert.Equal(sent.Count, parked.Count);
        Assert.All(parked, p =>
        {
            Assert.False(string.IsNullOrWhiteSpace(p.Error), "parked without x-error");
            Assert.Equal(RoutingStack.Node, p.RoutingKey);
        });
        static string Hash(byte[] body) => Convert.ToHexString(SHA256.HashData(body));
        Assert.Equal(
            sent.Select(s => Hash(s.Body)).Order(StringComparer.Ordinal),
            parked.Select(p => Hash(p.Body)).Order(StringComparer.Ordinal));
        output.WriteLine($"sent and parked {sent.Count} commands ({sent.Sum(s => (long)s.Body.Length) / 1024} KiB)");
    }

    /// <summary>Makes malformed commands from one seeded random source; none of them is a usable command.</summary>
    private sealed class Generator(Random random)
    {
        private static readonly string?[] ContentTypes = [null, "application/json", "text/plain", "application/octet-stream", "%%bad%%", ""];
        private static readonly string?[] CommandTypes = [null, Topology.Types.ContinueCall, "CallBroadcast", "junk", ""];

        public (string Kind, byte[] Body, BasicProperties Properties) Command(Guid[] seen)
        {
            // As many draws whatever the timing, so a seed always makes the same kinds of messages in the same order.
            var pick = random.Next(int.MaxValue);
            var fresh = NewGuid();
            var callId = random.Next(3) > 0 && seen.Length > 0 ? seen[pick % seen.Length] : fresh;
            var tally = random.Next(4) == 0;
            var batch = tally && random.Next(2) == 0;
            var properties = new BasicProperties
            {
                ContentType = Pick(ContentTypes),
                Type = batch ? Topology.Types.ClaimTallies : tally ? Topology.Types.ClaimTally : Pick(CommandTypes),
                CorrelationId = Pick<string?>([null, callId.ToString(), "x"]),
                Persistent = random.Next(2) == 0,
            };
            if (random.Next(5) == 0)
                properties.Headers = new Dictionary<string, object?> { ["x-junk"] = random.Next(), [Topology.MessageTypeHeader] = "urn:message:Nope" };
            var (kind, body) = batch ? Tallies(callId) : tally ? Tally(callId) : Continue(callId);
            return (kind, body, properties);
        }

        private (string, byte[]) Continue(Guid callId)
        {
            var whole = Wire.Serialize(new ContinueCall(callId, "1.1", CallStatus.Success, "cf-a", DispositionReason.Claimed,
                new DialplanTarget("stolen", "s", 1), null, null, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)));
            return random.Next(7) switch
            {
                0 => ("continue: random bytes", RandomBytes(random.Next(0, 400))),
                1 => ("continue: truncated JSON", Truncated(whole)),
                2 => ("continue: wrong types", Text(Pick(WrongTypes(callId)))),
                3 => ("continue: missing fields", Text(Pick(MissingFields(callId)))),
                4 => ("continue: huge body", Text(Pick(Huge(callId)))),
                5 => ("continue: not an object", Text(Pick(["null", "[]", "123", "\"SUCCESS\"", "true", new string('[', 300) + new string(']', 300)]))),
                _ => ("continue: trailing garbage or bad UTF-8", random.Next(2) == 0
                    ? [.. whole, .. Text(" trailing")]
                    : [.. whole[..^2], 0xC3, 0x28, .. whole[^2..]]),
            };
        }

        private (string, byte[]) Tally(Guid callId) => random.Next(4) switch
        {
            0 => ("tally: random bytes", RandomBytes(random.Next(0, 200))),
            1 => ("tally: negative claims", Text($$"""{"callId":"{{callId}}","channelId":"1.1","claims":{{-1 - random.Next(1000)}}}""")),
            2 => ("tally: wrong types", Text(Pick([
                $$"""{"callId":"{{callId}}","claims":"many"}""", $$"""{"callId":"{{callId}}","claims":1.5}""", $$"""{"callId":7,"claims":1}""",
                $$"""{"callId":"{{callId}}","claims":[1]}""", $$"""{"callId":"not-a-uuid","claims":1}""", "null", "[]"]))),
            _ => ("tally: no call id", Text(Pick(["{}", """{"claims":3}""", $$"""{"callId":"{{Guid.Empty}}","claims":3}""", $$"""{"channelId":"1.1","claims":{{random.Next(10)}}}"""]))),
        };

        // A batch with one bad tally is parked whole, its good ones too: none of them changes a CDR.
        private (string, byte[]) Tallies(Guid callId) => random.Next(4) switch
        {
            0 => ("tallies: random bytes", RandomBytes(random.Next(0, 200))),
            1 => ("tallies: one tally, not a batch", Text($$"""{"callId":"{{callId}}","channelId":"1.1","claims":{{random.Next(10)}}}""")),
            2 => ("tallies: not a list", Text(Pick(["{}", """{"tallies":null}""", """{"tallies":"x"}""", """{"tallies":{"callId":"x"}}""", "[]", "null"]))),
            _ => ("tallies: a bad tally among good ones", Text($$"""{"tallies":[{"callId":"{{callId}}","channelId":"1.1","claims":{{1 + random.Next(9)}}},{{Pick([
                "null", """{"claims":2}""", $$"""{"callId":"{{callId}}","claims":-3}""", $$"""{"callId":"{{callId}}","claims":"two"}""", $$"""{"callId":"{{Guid.Empty}}","claims":1}"""])}}]}""")),
        };

        private static string[] WrongTypes(Guid callId) =>
        [
            """{"callId":123,"channelId":"1.1","status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z"}""",
            $$"""{"callId":"{{callId}}","channelId":5,"status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z"}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1","status":7,"decidedAt":"2026-01-01T00:00:00Z"}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1","status":"SUCCESS","decidedAt":"yesterday"}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1","status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z","target":"ctx,s,1"}""",
            $$$"""{"callId":"{{{callId}}}","channelId":"1.1","status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z","target":{"context":"x","extension":"s","priority":"one"}}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1","status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z","appArgs":"a,b"}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1","status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z","control":"yes"}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1","status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z","claims":"many"}""",
            $$"""{"callId":{"id":"{{callId}}"},"channelId":"1.1","status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z"}""",
            """{"callId":"not-a-uuid","channelId":"1.1","status":"SUCCESS","decidedAt":"2026-01-01T00:00:00Z"}""",
        ];

        private static string[] MissingFields(Guid callId) =>
        [
            "{}",
            """{"foo":1}""",
            $$"""{"callId":"{{callId}}"}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1"}""",
            $$"""{"callId":"{{callId}}","status":"SUCCESS","winner":"cf-a"}""",
            """{"channelId":"1.1","status":"SUCCESS","winner":"cf-a"}""",
            $$"""{"callId":"{{Guid.Empty}}","channelId":"1.1","status":"SUCCESS"}""",
            $$"""{"callId":"{{callId}}","channelId":"","status":"SUCCESS"}""",
            $$"""{"callId":"{{callId}}","channelId":"1.1","status":""}""",
        ];

        private string[] Huge(Guid callId) =>
        [
            $$"""{"callId":"{{callId}}","channelId":"1.1","pad":"{{new string('x', 16_000 + random.Next(48_000))}}"}""",
            $$"""{"callId":"{{callId}}","status":"SUCCESS","appArgs":[{{string.Join(',', Enumerable.Repeat("\"a\"", 5000))}}]}""",
            $$"""{"callId":"{{callId}}","status":"{{new string('S', 20_000)}}"}""",
        ];

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
    }
}
