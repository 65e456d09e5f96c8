using System.Globalization;
using System.Text.Json;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using RabbitMQ.Client;
using Xunit;

namespace CallRouter.Tests;

/// <summary>A CallClaimed notice, like the broadcast it follows, expires at the call's deadline.</summary>
public sealed class CallClaimedExpiryTests : RoutingTest
{
    [Fact]
    public async Task A_call_claimed_notice_carries_a_ttl_that_ends_at_the_deadline()
    {
        await Stack.AddApp("sales");
        // A copy of everything sent to sales, in a queue nobody consumes, read through the management API.
        var o = Stack.Broker.Options;
        var factory = o.Factory("test CallClaimedExpiryTests");
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync("sales-copy", durable: false, exclusive: false, autoDelete: false);
        await channel.QueueBindAsync("sales-copy", Topology.BroadcastExchange, "sales");

        var call = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", "notify=yes"]);
        await call.Handover.WaitAsync(TimeSpan.FromSeconds(10));

        JsonElement notice = default;
        await Eventually.True(async () =>
        {
            var messages = JsonDocument.Parse(await Stack.Broker.GetQueueMessages("sales-copy")).RootElement;
            notice = messages.EnumerateArray().FirstOrDefault(m => m.GetProperty("properties").TryGetProperty("type", out var t) && t.GetString() == Topology.Types.CallClaimed);
            return notice.ValueKind == JsonValueKind.Object;
        }, TimeSpan.FromSeconds(10), "no CallClaimed reached the copy queue");

        var expiration = notice.GetProperty("properties").GetProperty("expiration").GetString();
        Assert.InRange(long.Parse(expiration!, CultureInfo.InvariantCulture), 1, 5000);
    }
}
