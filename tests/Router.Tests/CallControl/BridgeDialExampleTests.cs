using System.Reflection;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>examples/python/bridge_dial.py and examples/csharp/BridgeDial against the simulator: bridge, dial, answer, and hang-up of both sides.</summary>
public sealed class BridgeDialExampleTests : RoutingTest
{
    private static readonly string BridgeDialDll = typeof(BridgeDialExampleTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "ExampleBridgeDialDll").Value!;

    [Fact]
    public Task The_python_example_bridges_the_caller_to_the_callee_and_ends_the_caller_when_the_callee_leaves() =>
        Run("python", "py-dialer", "/usr/bin/python3", "examples/python/bridge_dial.py", "py-dialer", "Local/s@answerer/n");

    [Fact]
    public Task The_csharp_example_bridges_the_caller_to_the_callee_and_ends_the_caller_when_the_callee_leaves() =>
        Run("csharp", "cs-dialer", "dotnet", BridgeDialDll, "cs-dialer", "Local/s@answerer/n");

    private async Task Run(string language, string app, string fileName, params string[] arguments)
    {
        using var example = ExampleApp.Start(language, app, Stack.Broker.Options, fileName, arguments);
        try
        {
            await Stack.WaitUntilLive(app);
            for (var i = 0; i < 3; i++)
            {
                var caller = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000", $"filter=^{app}$"]);
                var bridged = await Line(example, l => l.StartsWith("BRIDGED ") && l.Contains($"caller={caller.Id}"));
                var callee = bridged.Split("callee=")[1];
                var calleeChannel = Stack.Ari.Find(callee)!;
                Assert.Equal(("Up", "Up"), (caller.State, calleeChannel.State));
                Assert.Equal(callee, Assert.Single(Stack.Ari.Bridges).ChannelIds.Single(id => id != caller.Id));
                Assert.Equal(DispositionReason.Controlled, caller.Variables[CallHandover.ReasonVariable]);

                await Stack.Ari.HangupAsync(callee); // the callee leaves: the app hangs up the caller

                await caller.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));
                await Line(example, l => l.StartsWith("ENDED ") && l.Contains("reason=hung-up") && l.Contains(bridged.Split(' ')[1]));
                Assert.Empty(Stack.Ari.Bridges);
                Assert.Empty(Stack.Ari.LiveChannels);
            }
        }
        catch (Exception exception) when (exception is TimeoutException or Xunit.Sdk.XunitException)
        {
            throw new Exception(example.Describe(), exception);
        }
        await example.Terminate();
        await example.WaitForExit(TimeSpan.FromSeconds(15));
        Assert.Equal(0, example.ExitCode);
    }

    private static async Task<string> Line(ExampleApp example, Func<string, bool> match)
    {
        string? found = null;
        await Eventually.True(() => (found = example.Lines.FirstOrDefault(match)) is not null, TimeSpan.FromSeconds(15), "the example never printed the line");
        return found!;
    }
}
