using System.Collections.Concurrent;
using CallRouter.AriSimulator;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// An ARI reconnect lists the channels in the app and fails the ones no broadcast stands behind as adapter-restarted.
/// A call handed over after that list was taken is still in it: it must be left alone, not failed a second time.
/// </summary>
public sealed class ReconnectRaceTests : RoutingTest
{
    private const string ChannelId = "race-1";

    public ReconnectRaceTests()
    {
        // The test holds a continue until it lets it go: no request timeout or retry may overtake it.
        Stack.AdapterSettings["Adapter:AriRequestTimeout"] = "00:00:30";
        Stack.AdapterSettings["Adapter:HandoverTimeout"] = "00:00:40";
    }

    [Fact]
    public async Task A_call_handed_over_while_a_reconnect_reads_the_channel_list_is_not_failed_as_left_behind()
    {
        await Stack.AddApp("sales");
        var continueArrived = Signal();
        var letContinue = Signal();
        var listTaken = Signal();
        var letList = Signal();
        var bridgesListed = Signal();
        var touchedAfterList = new ConcurrentQueue<string>();
        Stack.Ari.Faults = (operation, channelId) =>
        {
            if (operation == "continue" && channelId == ChannelId && continueArrived.TrySetResult())
                return new AriFault(AriFaultKind.SlowStart, Until: () => letContinue.Task);
            // The reconnect's list: taken while the continue is held (the call is in Stasis), answered after it went through.
            if (operation == "channels" && channelId is null && continueArrived.Task.IsCompleted && !listTaken.Task.IsCompleted)
                return new AriFault(AriFaultKind.SlowAnswer, Until: () =>
                {
                    listTaken.TrySetResult();
                    return letList.Task;
                });
            if (letList.Task.IsCompleted && channelId == ChannelId)
                touchedAfterList.Enqueue(operation);
            // The recovery lists bridges once it has been through the channels.
            if (operation == "bridges" && letList.Task.IsCompleted)
                bridgesListed.TrySetResult();
            return null;
        };

        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"], channelId: ChannelId);
        await continueArrived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Stack.Ari.DisconnectApp(RoutingStack.StasisApp); // the adapter reconnects and recovers
        await listTaken.Task.WaitAsync(TimeSpan.FromSeconds(10));

        letContinue.SetResult();
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        var book = Stack.Adapter!.Services.GetRequiredService<CallBook>();
        await Eventually.True(() => book.Count == 0, TimeSpan.FromSeconds(10), "the handed-over call never left the adapter's book");
        letList.SetResult();
        await bridgesListed.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(touchedAfterList.IsEmpty, $"the recovery sent the handed-over channel: {string.Join(", ", touchedAfterList)}");
        Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.Claimed, channel.Variables[CallHandover.ReasonVariable]);
    }

    private static TaskCompletionSource Signal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
