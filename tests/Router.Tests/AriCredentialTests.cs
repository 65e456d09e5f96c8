using System.Collections.Concurrent;
using CallRouter.AriSimulator;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Xunit;

namespace CallRouter.Tests;

/// <summary>The ARI password travels only in the Authorization header: never in the WebSocket URL, never in a log line.</summary>
public sealed class AriCredentialTests : RoutingTest
{
    private const string Password = "pw-Zx81-never-logged";
    private readonly LineCollector _lines = new();

    public AriCredentialTests()
    {
        Stack.SimulatorOptions = new AriSimulatorOptions { Password = Password };
        Stack.AdapterSettings["Adapter:AriPassword"] = Password;
        Stack.AdapterSettings["Adapter:AriRequestTimeout"] = "00:00:01";
        Stack.ConfigureAdapterLogging = logging => logging.AddProvider(_lines).AddFilter<LineCollector>(null, LogLevel.Trace);
    }

    [Fact]
    public async Task The_adapter_authenticates_its_websocket_with_a_header_and_never_logs_the_password()
    {
        await Stack.AddApp("sales");
        // Error paths log too: a failing request, a dropped WebSocket and its reconnect.
        var failed = 0;
        Stack.Ari.Faults = (operation, _) => operation == "continue" && Interlocked.Increment(ref failed) == 1 ? new AriFault(AriFaultKind.ServerError) : null;
        var first = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        await first.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        Stack.Ari.DisconnectApp(RoutingStack.StasisApp);
        await Eventually.True(() => Stack.Ari.EventRequests.Count >= 2, TimeSpan.FromSeconds(10), "the adapter never reconnected");
        await Stack.Ari.WaitForAppAsync(RoutingStack.StasisApp, TimeSpan.FromSeconds(10));
        var second = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        await second.Handover.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(CallStatus.Success, first.Variables["ROUTER_STATUS"]);
        Assert.Equal(CallStatus.Success, second.Variables["ROUTER_STATUS"]);
        Assert.All(Stack.Ari.EventRequests, request =>
        {
            Assert.True(request.HeaderAuth);
            Assert.DoesNotContain("api_key", request.Query);
            Assert.DoesNotContain(Password, request.Query);
        });
        Assert.Contains(_lines.Lines, line => line.Contains("ARI request failed"));
        Assert.DoesNotContain(_lines.Lines, line => line.Contains(Password) || line.Contains("api_key"));
    }

    [Fact]
    public async Task An_adapter_with_the_default_node_id_and_a_configured_ari_address_warns_that_node_ids_must_be_unique()
    {
        Assert.DoesNotContain(_lines.Lines, line => line.Contains("Adapter__Node is the default"));
        using var second = await Stack.StartAdapterFor(Stack.Ari, AsteriskAdapter.AdapterOptions.DefaultNode, untilReady: false);
        try
        {
            await Eventually.True(() => _lines.Lines.Any(line => line.Contains("Adapter__Node is the default 'asterisk-1'")),
                TimeSpan.FromSeconds(10), "no warning about the default node id");
        }
        finally
        {
            await second.StopAsync();
        }
    }

    /// <summary>Keeps every formatted log line (with its exception) of the adapter.</summary>
    private sealed class LineCollector : ILoggerProvider, ILogger
    {
        public ConcurrentQueue<string> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Enqueue(formatter(state, exception) + " " + exception);

        public void Dispose()
        {
        }
    }
}
