using CallRouter.AriSimulator;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>A call under an app's control, set up as bridge-dial does it: caller and callee B in a mixing bridge, B answered.</summary>
public sealed record ControlledCall(ControlApp App, SimChannel Caller, Guid CallId, string Route, string Callee, string Bridge)
{
    public Task<ControlReply> Do(ControlCall command) => App.Command(Route, command);

    /// <summary>Starts the controlling app, offers it a call and bridges a created, answered callee to the caller.</summary>
    public static async Task<ControlledCall> Start(RoutingStack stack, ControlApp app)
    {
        var caller = stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var broadcast = await app.WaitBroadcast();
        var started = await app.WaitStarted(broadcast.CallId);
        var call = broadcast.CallId;
        var b = await app.Command(started.Route, new ControlCall(call, ControlCommands.CreateChannel, Endpoint: "Local/s@answerer/n"));
        Assert.True(b.Ok, b.Detail);
        var bridge = await app.Command(started.Route, new ControlCall(call, ControlCommands.CreateBridge));
        Assert.True(bridge.Ok, bridge.Detail);
        foreach (var channel in new[] { caller.Id, b.ChannelId! })
            Assert.True((await app.Command(started.Route, new ControlCall(call, ControlCommands.AddChannel, ChannelId: channel, BridgeId: bridge.BridgeId))).Ok);
        Assert.True((await app.Command(started.Route, new ControlCall(call, ControlCommands.Dial, ChannelId: b.ChannelId))).Ok);
        await app.WaitFor(call, "Dial", e => e.Event.DialStatus == "ANSWER");
        return new ControlledCall(app, caller, call, started.Route, b.ChannelId!, bridge.BridgeId!);
    }

    public static async Task<ControlApp> StartApp(RoutingStack stack, string name, BrokerOptions? user = null, bool autoClaim = true)
    {
        var app = new ControlApp(user ?? stack.Broker.Options, name) { AutoClaim = autoClaim };
        await app.Start();
        await stack.WaitUntilLive(name);
        return app;
    }
}
