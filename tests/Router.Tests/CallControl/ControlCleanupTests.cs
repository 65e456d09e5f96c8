using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>Nothing is left behind: however a controlled call ends, created channels are hung up and bridges destroyed.</summary>
public sealed class ControlCleanupTests : RoutingTest
{
    [Fact]
    public async Task When_the_caller_hangs_up_the_callee_is_hung_up_the_bridge_destroyed_and_the_app_told()
    {
        await using var app = await ControlledCall.StartApp(Stack, "dialer");
        var call = await ControlledCall.Start(Stack, app);

        await Stack.Ari.HangupAsync(call.Caller.Id);

        var ended = await app.WaitEnded(call.CallId);
        Assert.Equal(ControlEnding.CallerHangup, ended.Reason);
        await Stack.Ari.Find(call.Callee)!.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(Stack.Ari.Bridges);
        Assert.Empty(Stack.Ari.LiveChannels);
        Assert.Equal(ControlFailure.NotInCall, (await call.Do(new ControlCall(call.CallId, ControlCommands.Answer))).Reason);
        var metrics = await Scrape.Of(Stack.Adapter!);
        Assert.Equal(1, metrics["callrouter_adapter_control_endings_total{reason=\"caller-hangup\"}"]);
        Assert.Equal(0, metrics["callrouter_adapter_controlled_calls"]);
        Assert.Equal(1, metrics["callrouter_adapter_control_commands_total{command=\"createChannel\",outcome=\"ok\"}"]);
        Assert.Equal(2, metrics["callrouter_adapter_control_commands_total{command=\"addChannel\",outcome=\"ok\"}"]);
        Assert.Equal(1, metrics["callrouter_adapter_control_commands_total{command=\"answer\",outcome=\"not-in-call\"}"]);
        Assert.Equal(1, metrics["callrouter_adapter_endings_total{reason=\"controlled\",status=\"SUCCESS\"}"]);
    }

    [Fact]
    public async Task When_the_app_stops_heartbeating_the_caller_returns_to_the_dialplan_failed_app_gone_and_the_rest_is_cleaned_up()
    {
        await using var app = await ControlledCall.StartApp(Stack, "dialer");
        var call = await ControlledCall.Start(Stack, app);

        app.StopHeartbeats();

        var ended = await app.WaitEnded(call.CallId);
        Assert.Equal(ControlEnding.AppGone, ended.Reason);
        await call.Caller.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(call.Caller.ContinuedTo);
        Assert.False(call.Caller.HungUp);
        Assert.Equal(CallStatus.Failed, call.Caller.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.AppGone, call.Caller.Variables[CallHandover.ReasonVariable]);
        await Stack.Ari.Find(call.Callee)!.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(Stack.Ari.Bridges);
        Assert.Equal([call.Caller.Id], Stack.Ari.LiveChannels.Select(c => c.Id));
    }

    [Fact]
    public async Task When_the_app_hangs_up_the_caller_the_session_ends_hung_up_and_its_callee_and_bridge_go_too()
    {
        await using var app = await ControlledCall.StartApp(Stack, "dialer");
        var call = await ControlledCall.Start(Stack, app);

        Assert.True((await call.Do(new ControlCall(call.CallId, ControlCommands.Hangup, Reason: "normal"))).Ok);

        Assert.Equal(ControlEnding.HungUp, (await app.WaitEnded(call.CallId)).Reason);
        await call.Caller.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));
        await Stack.Ari.Find(call.Callee)!.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(Stack.Ari.Bridges);
    }

    [Fact]
    public async Task When_the_adapter_stops_the_caller_returns_failed_adapter_stopping_and_nothing_is_left_on_the_asterisk()
    {
        await using var app = await ControlledCall.StartApp(Stack, "dialer");
        var call = await ControlledCall.Start(Stack, app);

        await Stack.StopAdapter();

        await call.Caller.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(CallStatus.Failed, call.Caller.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.AdapterStopping, call.Caller.Variables[CallHandover.ReasonVariable]);
        Assert.True(Stack.Ari.Find(call.Callee)!.HungUp);
        Assert.Empty(Stack.Ari.Bridges);
        Assert.Equal(ControlEnding.AdapterStopping, (await app.WaitEnded(call.CallId)).Reason);
    }
}
