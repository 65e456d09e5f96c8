using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// No CDR draft waits forever for a ChannelDestroyed that will not come: the adapter checks drafts older than
/// Adapter__DraftCheckAfter (and those whose subscription failed) with ARI, finishes the ones whose channel is gone
/// and subscribes again the ones still up.
/// </summary>
public sealed class CdrDraftCheckTests : PostgresStackTest
{
    protected override void Configure(RoutingStack stack)
    {
        stack.SimulatorOptions = new AriSimulatorOptions(); // channels stay up until the test hangs them up
        stack.AdapterSettings["Adapter:DraftCheckAfter"] = "00:00:01";
    }

    [Fact]
    public async Task A_channel_destroyed_unheard_in_a_reconnect_that_could_not_list_channels_gets_its_row_from_the_draft_check()
    {
        await Stack.AddApp("sales");
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000"]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        // At reconnect the adapter cannot list the channels, so its reconnect recovery learns nothing of this one.
        Stack.Ari.Faults = (operation, _) => operation == "channels" ? new AriFault(AriFaultKind.ServerError) : null;
        Stack.Ari.DisconnectApp(RoutingStack.StasisApp); // the adapter reconnects 200 ms later: ChannelDestroyed is never heard
        await Stack.Ari.HangupAsync(channel.Id);
        await Stack.Ari.WaitForAppAsync(RoutingStack.StasisApp, TimeSpan.FromSeconds(10));
        await WaitForCdrs(1, TimeSpan.FromSeconds(30));

        var row = Assert.Single(await Cdrs());
        Assert.Equal((channel.Id, CallStatus.Success, "sales", 1), (row.ChannelId, row.Status, row.Winner, row.Claims ?? -1));
        Assert.Null(row.HangupCause);
        Assert.Equal(DraftCheck.FoundGone, row.HangupCauseText);
    }

    [Fact]
    public async Task Channels_whose_subscription_was_shed_are_subscribed_again_and_get_rows_with_their_real_hangup_cause()
    {
        await Stack.StopAdapter();
        // One background request at a time and no queue: while a slow subscription runs, the others are shed.
        Stack.AdapterSettings["Adapter:AriBackgroundConcurrency"] = "1";
        Stack.AdapterSettings["Adapter:AriBackgroundQueue"] = "0";
        await Stack.StartAdapter();
        await Stack.AddApp("sales");
        var slow = 1;
        Stack.Ari.Faults = (operation, _) => operation == "subscription" && Interlocked.Exchange(ref slow, 0) == 1
            ? new AriFault(AriFaultKind.SlowStart, TimeSpan.FromSeconds(2))
            : null;

        var channels = Enumerable.Range(0, 4).Select(_ => Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000"])).ToList();
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(10));
        await Eventually.True(() => Stack.Ari.SubscribedChannels(RoutingStack.StasisApp).Count == channels.Count, TimeSpan.FromSeconds(30),
            () => $"{Stack.Ari.SubscribedChannels(RoutingStack.StasisApp).Count} of {channels.Count} channels subscribed");
        var scrape = await Scrape.Of(Stack.Adapter!);
        Assert.InRange(scrape["callrouter_adapter_ari_background_shed_total"], 1, double.MaxValue);

        foreach (var channel in channels)
            await Stack.Ari.HangupAsync(channel.Id, cause: 17);
        await WaitForCdrs(channels.Count, TimeSpan.FromSeconds(30));

        var rows = await Cdrs();
        Assert.Equal(channels.Select(c => c.Id).Order(), rows.Select(r => r.ChannelId).Order());
        Assert.All(rows, r => Assert.Equal((CallStatus.Success, "sales", 17), (r.Status, r.Winner, r.HangupCause ?? -1)));
    }
}
