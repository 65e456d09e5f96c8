using System.Text;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using RabbitMQ.Client;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>
/// 10,000 malformed call records (seeded: FUZZ_SEED replays) on the record exchange while calls are routed: every one
/// is parked in cdr.writer_error, and every real call still gets its row.
/// </summary>
public sealed class CdrFuzzTests(ITestOutputHelper output) : PostgresStackTest
{
    private const int Records = 10_000;
    private const int Calls = 20;

    [Fact]
    public async Task Malformed_call_records_are_all_parked_and_real_calls_still_get_their_rows()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), out var chosen) ? chosen : 20261128;
        output.WriteLine($"fuzz seed: {seed} (FUZZ_SEED={seed} replays this run)");
        var random = new Random(seed);
        await Stack.AddApp("sales");
        var o = Stack.Broker.Options;
        var factory = o.Factory("test CdrFuzzTests");
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();

        var channels = new List<AriSimulator.SimChannel>();
        for (var i = 0; i < Records; i++)
        {
            if (i % (Records / Calls) == 0)
                channels.Add(Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]));
            var properties = new BasicProperties { Type = Topology.Types.CallRecord, ContentType = "application/json", Persistent = true };
            await channel.BasicPublishAsync(Topology.RecordExchange, "", false, properties, Malformed(random));
        }

        await WaitForCdrs(Calls, TimeSpan.FromSeconds(60));
        await Eventually.True(async () => await Stack.Broker.MessageCount(Topology.RecordErrorQueue) >= Records, TimeSpan.FromSeconds(60),
            "not every malformed record was parked");
        Assert.Equal((uint)Records, await Stack.Broker.MessageCount(Topology.RecordErrorQueue));
        var rows = await Cdrs();
        Assert.Equal(channels.Select(c => c.Id).Order(), rows.Select(r => r.ChannelId).Order());
        Assert.Equal(0u, await Stack.Broker.MessageCount(Topology.RecordQueue));
    }

    /// <summary>Bytes that are not a storable CallRecord: noise, JSON of the wrong shape, records missing what the table needs.</summary>
    private static byte[] Malformed(Random random)
    {
        var id = new Guid([.. Enumerable.Range(0, 16).Select(_ => (byte)random.Next(256))]);
        string Record(string node, string channel, string status, string reason) =>
            $$"""{"callId":"{{id}}","node":"{{node}}","channelId":"{{channel}}","status":"{{status}}","reason":"{{reason}}","broadcastAt":"2026-01-01T00:00:00Z","endedAt":"2026-01-01T00:00:01Z"}""";
        switch (random.Next(8))
        {
            case 0:
                var noise = new byte[random.Next(0, 300)];
                random.NextBytes(noise);
                return noise;
            case 1: return Encoding.UTF8.GetBytes(random.Next(3) switch { 0 => "[]", 1 => "42", _ => "\"CallRecord\"" });
            case 2: return Encoding.UTF8.GetBytes($$"""{"node":"n","channelId":"c","status":"SUCCESS","reason":"claimed"}""");
            case 3: return Encoding.UTF8.GetBytes(Record("", "c", "SUCCESS", "claimed"));
            case 4: return Encoding.UTF8.GetBytes(Record("n", "", "TIMEOUT", "no-claim"));
            case 5: return Encoding.UTF8.GetBytes(Record("n", "c", new[] { "DONE", "success", "", "OK" }[random.Next(4)], "claimed"));
            case 6: return Encoding.UTF8.GetBytes(Record("n", "c", "FAILED", ""));
            default: return Encoding.UTF8.GetBytes(Record("n", "c", "SUCCESS", "claimed")[..random.Next(1, 60)]); // cut short
        }
    }
}
