using System.Collections.Concurrent;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// ROUTER_CALL_ID goes on a waiting call's channel Adapter__CallIdMarkAfter after its broadcast (for a restart to find);
/// a call decided sooner gets it from its handover's one variable request, and costs no request of its own.
/// </summary>
public sealed class CallIdMarkTests : RoutingTest
{
    private readonly ConcurrentDictionary<string, int> _variableRequests = new();

    public CallIdMarkTests() => Stack.AdapterSettings["Adapter:CallIdMarkAfter"] = "00:00:02";

    [Fact]
    public async Task A_call_decided_before_the_mark_is_due_gets_its_id_from_the_handover_alone_and_a_waiting_call_gets_it_marked()
    {
        Stack.Ari.Faults = (operation, channelId) =>
        {
            if (operation == "variable" && channelId is not null)
                _variableRequests.AddOrUpdate(channelId, 1, (_, n) => n + 1);
            return null;
        };
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var offers = new ConcurrentDictionary<string, CallBroadcast>();
        sales.BroadcastReceived += b => offers[b.ChannelId] = b;

        var decided = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=10000"]);
        await Eventually.True(() => offers.ContainsKey(decided.Id), TimeSpan.FromSeconds(5), "the first call was not offered");
        Assert.True((await sales.Claim(offers[decided.Id].CallId)).Accepted);
        await decided.Handover.WaitAsync(TimeSpan.FromSeconds(5));

        // A second call nobody claims: its mark falls due after the first call's, so once it is on the channel the first
        // call's mark time has passed too.
        var waiting = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=10000"]);
        await Eventually.True(() => offers.ContainsKey(waiting.Id), TimeSpan.FromSeconds(5), "the second call was not offered");
        await Eventually.True(() => waiting.Variables.ContainsKey(CallHandover.CallIdVariable), TimeSpan.FromSeconds(10), "the waiting call's id never reached its channel");
        Assert.Equal(RoutingStack.StasisApp, waiting.App); // still waiting for a decision
        Assert.Equal(offers[waiting.Id].CallId.ToString(), waiting.Variables[CallHandover.CallIdVariable]);
        Assert.Equal(1, _variableRequests.GetValueOrDefault(waiting.Id));

        // The decided call: one variable request in all (the handover's ARRAY, with ROUTER_CALL_ID in it).
        Assert.Equal(offers[decided.Id].CallId.ToString(), decided.Variables[CallHandover.CallIdVariable]);
        Assert.Equal(1, _variableRequests.GetValueOrDefault(decided.Id));
    }
}
