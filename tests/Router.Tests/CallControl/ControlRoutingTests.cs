using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>With several Asterisks, commands reach the adapter that owns the call; a stopped adapter's calls answer node-unavailable.</summary>
public sealed class ControlRoutingTests : RoutingTest
{
    [Fact]
    public async Task Commands_follow_the_route_to_the_asterisk_that_has_the_call_and_a_stopped_node_answers_node_unavailable()
    {
        await using var app = await ControlledCall.StartApp(Stack, "dialer");
        await using var second = await AriSimulator.AriSimulator.StartAsync();
        using var secondAdapter = await Stack.StartAdapterFor(second, "node-b");
        await Stack.WaitUntilLive("dialer");
        await Eventually.True(() => secondAdapter.Services.GetService(typeof(AsteriskAdapter.Calls.LiveApps)) is AsteriskAdapter.Calls.LiveApps live && live.IsLive("dialer"),
            TimeSpan.FromSeconds(10), "the app never became live on node-b");

        var caller = second.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var broadcast = await app.WaitBroadcast();
        var started = await app.WaitStarted(broadcast.CallId);
        Assert.Equal(("node-b", caller.Id), (started.Node, started.ChannelId));

        var created = await app.Command(started.Route, new ControlCall(broadcast.CallId, ControlCommands.CreateChannel, Endpoint: "Local/s@answerer/n"));
        Assert.True(created.Ok, created.Detail);
        Assert.NotNull(second.Find(created.ChannelId!));
        Assert.Null(Stack.Ari.Find(created.ChannelId!));
        var elsewhere = await app.Command(RoutingStack.Node, new ControlCall(broadcast.CallId, ControlCommands.Answer));
        Assert.Equal(ControlFailure.NotFound, elsewhere.Reason);

        await secondAdapter.StopAsync();
        secondAdapter.Dispose(); // its connection closes: the exclusive command queue and its binding go with it

        var unavailable = await app.Command(started.Route, new ControlCall(broadcast.CallId, ControlCommands.Answer));
        Assert.Equal(ControlFailure.NodeUnavailable, unavailable.Reason);
        Assert.Contains("'node-b'", unavailable.Detail);
        Assert.True(second.Find(created.ChannelId!)!.HungUp);
    }
}
