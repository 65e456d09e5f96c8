using System.Text.Json;
using CallRouter.AsteriskAdapter.Ari;
using CallRouter.Common;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Xunit;

namespace CallRouter.Tests;

/// <summary>A broker hiccup while a call hangs up neither drops the ARI WebSocket nor loses the call's CallEnded.</summary>
public sealed class AdapterBrokerHiccupTests : RoutingTest
{
    [Fact]
    public async Task A_hang_up_while_the_adapters_broker_connection_is_down_keeps_the_ari_websocket_and_its_call_ended_arrives_later()
    {
        var app = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>(TaskCreationOptions.RunContinuationsAsynchronously);
        app.BroadcastReceived += b => offered.TrySetResult(b);

        // Listen to call.events as the router does, on a connection of the test's own.
        var o = Stack.Broker.Options;
        var factory = o.Factory("test AdapterBrokerHiccupTests");
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync("", exclusive: true)).QueueName;
        await channel.QueueBindAsync(queue, Topology.EventExchange, "");
        var ended = new TaskCompletionSource<CallEnded>(TaskCreationOptions.RunContinuationsAsynchronously);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            ended.TrySetResult(JsonSerializer.Deserialize<CallEnded>(delivery.Body.Span, Wire.Json)!);
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);

        var call = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=30000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var closed = 0;
        await Eventually.True(async () => (closed = await Stack.Broker.CloseConnections($"adapter {RoutingStack.Node} ")) > 0,
            TimeSpan.FromSeconds(15), "the adapter's connection never showed in the management API");
        var events = Stack.Adapter!.Services.GetRequiredService<AriEventStream>();
        await Eventually.True(() => !Stack.Adapter!.Services.GetRequiredService<AsteriskAdapter.Broker.AdapterBroker>().IsConnected,
            TimeSpan.FromSeconds(10), "the adapter never saw its connection closed");
        await Stack.Ari.HangupAsync(call.Id);

        var message = await ended.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(broadcast.CallId, message.CallId);
        Assert.Equal(CallStatus.Abandoned, message.Status);
        Assert.Equal(0, events.Reconnects);
        Assert.True(events.IsConnected);
    }

    // On one node a confirm that never came means a memory or disk alarm, which a new connection would not change: the
    // adapter keeps its publishing connection (the cluster's case is in StalledConnectionTests).
    [Fact]
    public async Task On_a_single_node_a_confirm_that_never_came_keeps_the_publishing_connection()
    {
        var broker = Stack.Adapter!.Services.GetRequiredService<AsteriskAdapter.Broker.AdapterBroker>();
        Assert.True(broker.IsConnected); // so the answer below is the single node's, not a connection not made yet
        Assert.False(broker.ConfirmTimedOut());
        Assert.Equal(0, broker.PublisherReplacements);
        Assert.Equal(0, (await Scrape.Of(Stack.Adapter!))["callrouter_adapter_broker_publisher_replacements_total"]);
    }
}
