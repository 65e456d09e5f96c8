using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>
/// The bridge-dial app driven over the bus alone, through router, adapter and the ARI simulator on the real broker:
/// every command and event of ari-call-control.md, with its quirks.
/// </summary>
public sealed class BridgeDialTests : RoutingTest
{
    [Fact]
    public async Task A_controlling_app_drives_bridge_dial_over_the_bus_with_every_command_and_event()
    {
        await using var app = await StartApp("dialer");
        var caller = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var broadcast = await app.WaitBroadcast();
        var started = await app.WaitStarted(broadcast.CallId);
        Assert.Equal((caller.Id, RoutingStack.Node, "dialer"), (started.ChannelId, started.Node, started.App));
        Assert.Equal(CallStatus.Success, caller.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.Controlled, caller.Variables[CallHandover.ReasonVariable]);
        Assert.Null(caller.ContinuedTo);
        var call = broadcast.CallId;
        var route = started.Route;
        Task<ControlReply> Do(ControlCall command) => app.Command(route, command);

        // Callee B: created in the app (StasisStart), not dialed yet.
        var created = await Do(new ControlCall(call, ControlCommands.CreateChannel, Endpoint: "Local/s@answerer/n"));
        Assert.True(created.Ok, created.Detail);
        var b = created.ChannelId!;
        await app.WaitFor(call, "StasisStart", e => e.Event.ChannelId == b);
        Assert.Equal("Down", Stack.Ari.Find(b)!.State);

        var bridged = await Do(new ControlCall(call, ControlCommands.CreateBridge));
        Assert.True(bridged.Ok, bridged.Detail);
        var bridge = bridged.BridgeId!;
        Assert.True((await Do(new ControlCall(call, ControlCommands.AddChannel, ChannelId: caller.Id, BridgeId: bridge))).Ok);
        Assert.True((await Do(new ControlCall(call, ControlCommands.AddChannel, ChannelId: b, BridgeId: bridge))).Ok);
        await app.WaitFor(call, "ChannelEnteredBridge", e => e.Event.ChannelId == b && e.Event.BridgeId == bridge);

        // Dial B: it answers, and (recorded quirk) control frames cross the bridge, so the caller is Up too.
        Assert.True((await Do(new ControlCall(call, ControlCommands.Dial, ChannelId: b, Timeout: 10))).Ok);
        await app.WaitFor(call, "Dial", e => e.Event.ChannelId == b && e.Event.DialStatus == "ANSWER");
        await app.WaitFor(call, "ChannelStateChange", e => e.Event.ChannelId == caller.Id && e.Event.ChannelState == "Up");
        Assert.True((await Do(new ControlCall(call, ControlCommands.Answer))).Ok);
        var again = await Do(new ControlCall(call, ControlCommands.Dial, ChannelId: b));
        Assert.Equal((false, ControlFailure.Conflict), (again.Ok, again.Reason));
        Assert.Contains("Channel is not in the 'Down' state", again.Detail);

        Assert.True((await Do(new ControlCall(call, ControlCommands.SetVariable, Variable: "FOO", Value: "bar"))).Ok);
        var value = await Do(new ControlCall(call, ControlCommands.GetVariable, Variable: "FOO"));
        Assert.Equal((true, "bar"), (value.Ok, value.Value));
        var missing = await Do(new ControlCall(call, ControlCommands.GetVariable, Variable: "NOPE"));
        Assert.Equal(ControlFailure.NotFound, missing.Reason);

        // A tone on the bridge, stopped; a missing sound on the caller: accepted, then PlaybackFinished "failed".
        var tone = await Do(new ControlCall(call, ControlCommands.Play, BridgeId: bridge, Media: "tone:440;tonezone=us"));
        Assert.True(tone.Ok, tone.Detail);
        await app.WaitFor(call, "PlaybackStarted", e => e.Event.PlaybackId == tone.PlaybackId);
        Assert.True((await Do(new ControlCall(call, ControlCommands.StopPlayback, PlaybackId: tone.PlaybackId))).Ok);
        await app.WaitFor(call, "PlaybackFinished", e => e.Event.PlaybackId == tone.PlaybackId && e.Event.PlaybackState == "done");
        var stoppedTwice = await Do(new ControlCall(call, ControlCommands.StopPlayback, PlaybackId: tone.PlaybackId));
        Assert.Equal(ControlFailure.NotInCall, stoppedTwice.Reason);
        var sound = await Do(new ControlCall(call, ControlCommands.Play, Media: "sound:does-not-exist"));
        Assert.True(sound.Ok, sound.Detail);
        await app.WaitFor(call, "PlaybackFinished", e => e.Event.PlaybackId == sound.PlaybackId && e.Event.PlaybackState == "failed");

        // DTMF both ways.
        Assert.True((await Do(new ControlCall(call, ControlCommands.SendDtmf, Dtmf: "12"))).Ok);
        caller.PressDigit('5');
        await app.WaitFor(call, "ChannelDtmfReceived", e => e.Event.Digit == "5" && e.Event.ChannelId == caller.Id);

        // ARI's own errors, as reasons: an unknown technology (500 {"error":…}), a busy callee.
        var bogus = await Do(new ControlCall(call, ControlCommands.CreateChannel, Endpoint: "Bogus/xyz"));
        Assert.Equal((false, ControlFailure.Failed), (bogus.Ok, bogus.Reason));
        Assert.Contains("Allocation failed", bogus.Detail);
        var busy = await Do(new ControlCall(call, ControlCommands.CreateChannel, Endpoint: "Local/busy@answerer"));
        Assert.True((await Do(new ControlCall(call, ControlCommands.Dial, ChannelId: busy.ChannelId))).Ok);
        await app.WaitFor(call, "Dial", e => e.Event.ChannelId == busy.ChannelId && e.Event.DialStatus == "BUSY");
        Assert.True((await Do(new ControlCall(call, ControlCommands.Hangup, ChannelId: busy.ChannelId, Reason: "busy"))).Ok);
        await app.WaitFor(call, "ChannelDestroyed", e => e.Event.ChannelId == busy.ChannelId && e.Event.Cause == 17);

        // B leaves and hangs up; the caller goes back to the dialplan; the session ends and its bridge is destroyed.
        Assert.True((await Do(new ControlCall(call, ControlCommands.RemoveChannel, ChannelId: b, BridgeId: bridge))).Ok);
        await app.WaitFor(call, "ChannelLeftBridge", e => e.Event.ChannelId == b);
        var notMember = await Do(new ControlCall(call, ControlCommands.RemoveChannel, ChannelId: b, BridgeId: bridge));
        Assert.Equal(ControlFailure.Conflict, notMember.Reason);
        Assert.True((await Do(new ControlCall(call, ControlCommands.Hangup, ChannelId: b, Reason: "normal"))).Ok);
        await app.WaitFor(call, "ChannelHangupRequest", e => e.Event.ChannelId == b && e.Event.Cause == 32);
        await app.WaitFor(call, "ChannelDestroyed", e => e.Event.ChannelId == b && e.Event.Cause == 16);
        Assert.True((await Do(new ControlCall(call, ControlCommands.Continue, Target: new DialplanTarget("done", "s", 1)))).Ok);
        var ended = await app.WaitEnded(call);
        Assert.Equal(ControlEnding.Continued, ended.Reason);
        Assert.Equal(new AriSimulator.DialplanLocation("done", "s", 1), caller.ContinuedTo);
        Assert.Equal(CallStatus.Success, caller.Variables[CallHandover.StatusVariable]);
        Assert.Empty(Stack.Ari.Bridges);
        Assert.Equal([caller.Id], Stack.Ari.LiveChannels.Select(c => c.Id));

        var late = await Do(new ControlCall(call, ControlCommands.Answer));
        Assert.Equal(ControlFailure.NotInCall, late.Reason);

        // In ARI order, noise left out, and the session's last event is CallControlEnded.
        var types = app.EventsOf(call).Select(e => e.Type).ToList();
        Assert.DoesNotContain("ChannelVarset", types);
        Assert.DoesNotContain("ChannelDialplan", types);
        Assert.Equal(Topology.Types.CallControlStarted, types[0]);
        Assert.Equal(Topology.Types.CallControlEnded, types[^1]);
        var ofB = app.EventsOf(call).Where(e => e.Type != Topology.Types.CallControlStarted && e.Event.ChannelId == b).Select(e => e.Type).ToList();
        Assert.Equal(["StasisStart", "ChannelEnteredBridge", "Dial", "ChannelStateChange", "Dial", "ChannelLeftBridge", "ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"], ofB);
    }

    [Fact]
    public async Task An_app_that_asks_for_all_events_also_hears_the_noise_with_its_variables()
    {
        await using var app = await StartApp("listener", allEvents: true);
        var caller = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var call = (await app.WaitBroadcast()).CallId;
        var route = (await app.WaitStarted(call)).Route;

        Assert.True((await app.Command(route, new ControlCall(call, ControlCommands.SetVariable, Variable: "FOO", Value: "bar"))).Ok);
        var set = await app.WaitFor(call, "ChannelVarset", e => e.Event.Variable == "FOO");
        Assert.Equal((caller.Id, "bar"), (set.Event.ChannelId, set.Event.Value));
        Assert.True((await app.Command(route, new ControlCall(call, ControlCommands.Continue))).Ok);
        await app.WaitEnded(call);
        Assert.Equal(Topology.Types.CallControlStarted, app.EventsOf(call)[0].Type);
    }

    private async Task<ControlApp> StartApp(string name, bool allEvents = false)
    {
        var app = new ControlApp(Stack.Broker.Options, name) { AllEvents = allEvents };
        await app.Start();
        await Stack.WaitUntilLive(name);
        return app;
    }
}
