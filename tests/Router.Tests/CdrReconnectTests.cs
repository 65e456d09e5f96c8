using CallRouter.AriSimulator;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>A call that ends while the adapter's ARI event socket is down still gets its CDR row.</summary>
public sealed class CdrReconnectTests : PostgresStackTest
{
    protected override void Configure(RoutingStack stack) => stack.SimulatorOptions = new AriSimulatorOptions(); // channels stay up

    [Fact]
    public async Task A_channel_destroyed_while_the_event_socket_was_down_gets_its_row_when_the_adapter_reconnects()
    {
        await Stack.AddApp("sales");
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        Stack.Ari.DisconnectApp(RoutingStack.StasisApp); // the adapter reconnects 200 ms later: ChannelDestroyed is never heard
        await Stack.Ari.HangupAsync(channel.Id);
        await WaitForCdrs(1, TimeSpan.FromSeconds(15));

        var row = Assert.Single(await Cdrs());
        Assert.Equal((channel.Id, CallStatus.Success, "sales", 1), (row.ChannelId, row.Status, row.Winner, row.Claims ?? -1));
        Assert.Null(row.HangupCause);
        Assert.Equal("ended while the adapter was not connected to ARI", row.HangupCauseText);
    }
}
