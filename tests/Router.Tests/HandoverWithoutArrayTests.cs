using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>An Asterisk without the ARRAY function (func_strings not loaded): the ROUTER_* variables are set one by one.</summary>
public sealed class HandoverWithoutArrayTests : RoutingTest
{
    public HandoverWithoutArrayTests() => Stack.SimulatorOptions = new AriSimulatorOptions { ArrayFunction = false };

    [Fact]
    public async Task Each_variable_is_set_on_its_own_and_every_call_still_routes()
    {
        await Stack.AddApp("sales");
        var calls = new List<SimChannel>();
        for (var i = 0; i < 3; i++)
        {
            var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
            await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));
            calls.Add(channel);
        }

        Assert.All(calls, c =>
        {
            Assert.Equal("SUCCESS", c.StasisStatus);
            Assert.Equal(CallStatus.Success, c.Variables[CallHandover.StatusVariable]);
            Assert.Equal(DispositionReason.Claimed, c.Variables[CallHandover.ReasonVariable]);
            Assert.Equal("sales", c.Variables[CallHandover.WinnerVariable]);
            Assert.True(Guid.TryParse(c.Variables[CallHandover.CallIdVariable], out _));
            Assert.DoesNotContain(c.Variables.Keys, k => k.StartsWith("ARRAY(", StringComparison.Ordinal));
        });
    }
}
