using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Broker;
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
/// routes on the new connection. The adapter replaces its publishing connection for the same reason. The partition test in
/// ClusterTests is the whole story.
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

    public StalledConnectionTests()
    {
        // One second, not 8: the late sends (confirms) below are the stall, and it is still going when the second is up.
        _stack.RouterSettings["Router:StalledSendReconnectAfter"] = "00:00:01";
        _stack.AdapterSettings["Adapter:StalledPublishReplaceAfter"] = "00:00:01";
    }

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

    // The adapter's half: a confirm that never came on an open connection replaces its publishing connection (broadcasts,
    // confirmed call events, records), once per quiet period; its consuming connection stays. It routes, and records
    // calls, on the new one.
    [Fact]
    public async Task A_confirm_that_never_came_on_an_open_connection_makes_the_adapter_publish_on_a_new_connection_once_and_route_on()
    {
        var broker = _stack.Adapter!.Services.GetRequiredService<AdapterBroker>();
        await _stack.AddApp("sales");
        Assert.Equal(CallStatus.Success, await Routed());
        var consuming = $"{broker.ConnectionName} ";
        var publishing = $"{broker.ConnectionName} publishing ";
        string[] before = [];
        await Eventually.True(async () => (before = await AdapterConnections()).Length == 2, TimeSpan.FromSeconds(30), "the adapter's two connections are not listed");

        Assert.True(broker.ConfirmTimedOut());
        Assert.False(broker.ConfirmTimedOut()); // the same stall: no second replacement

        string[] after = [];
        await Eventually.True(async () => (after = await AdapterConnections()).Length == 2 && !after.Contains(before.Single(c => c.StartsWith(publishing))),
            TimeSpan.FromSeconds(30), () => $"the adapter did not replace its publishing connection: before {string.Join(", ", before)}; after {string.Join(", ", after)}");
        Assert.Equal(before.Single(c => c.StartsWith(consuming, StringComparison.Ordinal) && !c.StartsWith(publishing, StringComparison.Ordinal)),
            after.Single(c => c.StartsWith(consuming, StringComparison.Ordinal) && !c.StartsWith(publishing, StringComparison.Ordinal)));
        Assert.Single(after, c => c.StartsWith(publishing, StringComparison.Ordinal));
        Assert.Equal(1, broker.PublisherReplacements);
        Assert.Equal(1, (await Scrape.Of(_stack.Adapter!))["callrouter_adapter_broker_publisher_replacements_total"]);

        var call = await Route();
        Assert.Equal(CallStatus.Success, call.Variables[CallHandover.StatusVariable]);
        await _stack.Ari.HangupAsync(call.Id);
        var callId = call.Variables[CallHandover.CallIdVariable];
        await Eventually.True(async () => (await _stack.Broker.GetQueueMessages(Topology.RecordQueue)).Contains(callId, StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the call's record was not published on the new connection");
    }

    /// <summary>The adapter's connections as the broker lists them: the name the adapter gave each, then the broker's.</summary>
    private async Task<string[]> AdapterConnections() =>
        [.. (await _stack.Broker.ConnectionNames()).Where(c => c.StartsWith("adapter ", StringComparison.Ordinal))];

    private async Task<string> Routed() => (await Route()).Variables[CallHandover.StatusVariable];

    private async Task<SimChannel> Route()
    {
        var channel = _stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(30));
        return channel;
    }

    private async Task<string[]> RouterConnections() =>
        [.. (await _stack.Broker.ConnectionNames()).Where(c => c.StartsWith("testhost ", StringComparison.Ordinal))];
}
