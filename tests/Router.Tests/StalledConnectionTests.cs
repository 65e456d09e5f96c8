using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Router.Transport;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// <see cref="StalledConnectionBreaker"/> (issue 13): with quorum queues, a send that ran past its deadline on an open
/// connection makes the router reconnect (after a partition RabbitMQ 3.x can leave a channel that never confirms again),
/// once per quiet period; a send failed by a closed connection does not (MassTransit reconnects by itself). The router
/// routes on the new connection. The partition test in ClusterTests is the whole story.
/// </summary>
public sealed class StalledConnectionTests : IAsyncLifetime
{
    private readonly RoutingStack _stack = new()
    {
        BrokerFactory = async () =>
        {
            var broker = await TestBroker.Create();
            broker.Options.QueueType = BrokerOptions.QuorumQueues;
            return broker;
        },
    };

    public Task InitializeAsync() => _stack.InitializeAsync();

    public Task DisposeAsync() => _stack.DisposeAsync();

    [Fact]
    public async Task A_send_past_its_deadline_on_an_open_connection_makes_the_router_reconnect_once_and_route_on()
    {
        var breaker = _stack.Router!.Services.GetRequiredService<StalledConnectionBreaker>();
        await _stack.AddApp("sales");
        Assert.Equal(CallStatus.Success, await Routed());
        // The router's connection (MassTransit names it after the process, here the test host).
        string[] before = [];
        await Eventually.True(async () => (before = await RouterConnections()).Length == 1, TimeSpan.FromSeconds(30), "no router connection");

        // As the send observer hears them: a closed connection, then two sends cancelled by their own deadline.
        await breaker.SendFault<ClaimReply>(null!, new AlreadyClosedException(new ShutdownEventArgs(ShutdownInitiator.Library, 0, "End of stream")));
        Assert.Equal(0, breaker.Breaks);
        await breaker.SendFault<ClaimReply>(null!, new TaskCanceledException("send", new OperationCanceledException(Outbound.SendDeadline())));
        await breaker.SendFault<ClaimReply>(null!, new OperationCanceledException(Outbound.SendDeadline()));

        // The router's connection was replaced by a new one.
        string[] after = [];
        await Eventually.True(async () => (after = await RouterConnections()).Length == 1 && after[0] != before[0], TimeSpan.FromSeconds(30),
            () => $"the router did not reconnect: before {string.Join(", ", before)}; after {string.Join(", ", after)}");
        Assert.Equal(1, breaker.Breaks);
        Assert.Equal(CallStatus.Success, await Routed());
    }

    private async Task<string> Routed()
    {
        var channel = _stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(30));
        return channel.Variables[CallHandover.StatusVariable];
    }

    private async Task<string[]> RouterConnections() =>
        [.. (await _stack.Broker.ConnectionNames()).Where(c => c.StartsWith("testhost ", StringComparison.Ordinal))];
}
