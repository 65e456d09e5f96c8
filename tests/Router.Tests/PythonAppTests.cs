using System.Diagnostics;
using System.Text.Json;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>An app in another language (Python, pika only) claims a call and reads its answer.</summary>
public sealed class PythonAppTests : RoutingTest
{
    [Fact]
    public async Task A_pika_app_claims_with_direct_reply_to_and_gets_its_answer()
    {
        // As a least-privileged app user made by infra/add-app-user.sh (the user's name is the app's).
        var user = await Stack.Broker.CreateAppUser("py-app");
        var app = user.User;
        var script = Path.Combine(AppContext.BaseDirectory, "python", "claim_once.py");
        var start = new ProcessStartInfo("/usr/bin/python3", [script, app]) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["RABBITMQ_HOST"] = Stack.Broker.Options.Host;
        start.Environment["RABBITMQ_PORT"] = Stack.Broker.Options.Port.ToString();
        start.Environment["RABBITMQ_VHOST"] = Stack.Broker.Options.VirtualHost;
        start.Environment["RABBITMQ_USER"] = user.User;
        start.Environment["RABBITMQ_PASSWORD"] = user.Password;
        using var python = Process.Start(start)!;
        var stderr = python.StandardError.ReadToEndAsync();
        Assert.Equal("ready", await python.StandardOutput.ReadLineAsync());
        await Stack.WaitUntilLive(app);

        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        var answer = await python.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await python.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True(python.ExitCode == 0, await stderr);
        var reply = JsonSerializer.Deserialize<ClaimReply>(answer!, Wire.Json)!;
        Assert.True(reply.Accepted, answer);
        Assert.Equal(app, reply.Winner);
        Assert.Equal(app, channel.Variables[CallHandover.WinnerVariable]);
        Assert.Equal("python", channel.ContinuedTo!.Context);
    }
}
