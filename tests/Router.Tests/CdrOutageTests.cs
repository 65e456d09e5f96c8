using System.Diagnostics;
using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>PostgreSQL stopped for 30 s while calls are routed (single box, sagas in memory): routing goes on, every CDR lands once.</summary>
public sealed class CdrOutageTests(ITestOutputHelper output) : PostgresStackTest
{
    [Fact]
    public async Task With_PostgreSQL_stopped_for_30_s_calls_are_still_routed_and_every_CDR_arrives_once_it_is_back()
    {
        await Stack.AddApp("sales");
        var channels = new List<SimChannel>();
        async Task Calls(int count)
        {
            for (var i = 0; i < count; i++)
            {
                channels.Add(Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000"]));
                await Task.Delay(50);
            }
        }

        await Calls(40);
        await WaitForCdrs(40, TimeSpan.FromSeconds(30));
        Postgres("stop");
        var outage = Stopwatch.StartNew();
        try
        {
            while (outage.Elapsed < TimeSpan.FromSeconds(30))
                await Calls(20);
            await Task.WhenAll(channels.Select(c => c.Destroyed)).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.All(channels, c => Assert.Equal(CallStatus.Success, c.Variables[CallHandover.StatusVariable]));
        }
        finally
        {
            Postgres("start");
        }
        output.WriteLine($"{channels.Count} calls, {channels.Count - 40} of them while PostgreSQL was down for {outage.Elapsed.TotalSeconds:F0} s");

        await WaitForCdrs(channels.Count, TimeSpan.FromSeconds(60));
        await Task.Delay(TimeSpan.FromSeconds(2)); // anything written twice would show by now
        var rows = await Cdrs();
        Assert.Equal(channels.Select(c => c.Id).Order(), rows.Select(r => r.ChannelId).Order());
        Assert.All(rows, r => Assert.Equal((CallStatus.Success, "sales", 1), (r.Status, r.Winner, r.Claims ?? -1)));
    }

    private void Postgres(string command)
    {
        var script = Path.Combine(Repository.Root, "infra", "postgres.sh");
        using var process = Process.Start(new ProcessStartInfo("bash", [script, command]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        process.WaitForExit(60_000);
        var said = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        output.WriteLine($"postgres {command}: {said.Trim()}");
        Assert.True(process.ExitCode == 0, $"infra/postgres.sh {command} failed: {said}");
    }
}
