using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>A call offered to live apps, claimed, and handed over — end to end on RabbitMQ and the ARI simulator.</summary>
public sealed class ClaimFlowTests : RoutingTest
{
    [Fact]
    public async Task One_app_claims_and_the_call_continues_at_its_target_with_the_router_variables()
    {
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>();
        sales.BroadcastReceived += b => offered.TrySetResult(b);

        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000", "args=vip:gold"], extension: "2000", callerNumber: "5557777", callerName: "Carol");
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(5));
        var reply = await sales.Claim(broadcast.CallId, new DialplanTarget("sales", "s", 1));
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True(reply.Accepted);
        Assert.Null(reply.Reason);
        Assert.Equal("sales", reply.Winner);
        Assert.Equal(channel.Id, broadcast.ChannelId);
        Assert.Equal("5557777", broadcast.CallerNumber);
        Assert.Equal("Carol", broadcast.CallerName);
        Assert.Equal("2000", broadcast.Extension);
        Assert.Equal(["vip", "gold"], broadcast.Args);
        Assert.Equal(["sales"], broadcast.Audience);
        Assert.Equal(RoutingStack.Node, broadcast.Node);
        Assert.Equal(3000, broadcast.TimeoutMs);
        Assert.Equal(broadcast.BroadcastAt.AddMilliseconds(3000), broadcast.Deadline);

        Assert.Equal(new("sales", "s", 1), new DialplanTarget(channel.ContinuedTo!.Context, channel.ContinuedTo.Extension, channel.ContinuedTo.Priority));
        Assert.Equal("SUCCESS", channel.StasisStatus);
        Assert.Equal(CallStatus.Success, channel.Variables[CallHandover.StatusVariable]);
        Assert.Equal(DispositionReason.Claimed, channel.Variables[CallHandover.ReasonVariable]);
        Assert.Equal("sales", channel.Variables[CallHandover.WinnerVariable]);
        Assert.Equal("vip:gold", channel.Variables[CallHandover.ArgsVariable]);
        Assert.Equal(broadcast.CallId.ToString(), channel.Variables[CallHandover.CallIdVariable]);
    }
}
