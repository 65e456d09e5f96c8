using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using CallRouter.AsteriskAdapter.Calls;
using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>An adapter that died without cleaning up: the next run ends what its controlled calls left on the Asterisk.</summary>
public sealed class ControlRecoveryTests : RoutingTest
{
    [Fact]
    public async Task After_a_crash_the_next_adapter_run_fails_the_caller_back_hangs_up_created_channels_and_destroys_bridges()
    {
        await Stack.StopAdapter();
        // What a crashed adapter leaves: a caller in the app, a channel it created for the call, the call's bridge.
        using (var socket = new ClientWebSocket())
        {
            var events = new UriBuilder(new Uri(Stack.Ari.BaseUrl, "events")) { Scheme = "ws", Query = $"app={RoutingStack.StasisApp}&api_key=router:secret" }.Uri;
            await socket.ConnectAsync(events, CancellationToken.None);
            await Stack.Ari.WaitForAppAsync(RoutingStack.StasisApp, TimeSpan.FromSeconds(5));
            var caller = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=5000"]);
            using var http = new HttpClient { BaseAddress = Stack.Ari.BaseUrl };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("router:secret")));
            var callId = Guid.NewGuid();
            (await http.PostAsync($"channels/create?endpoint=Local/s@answerer/n&app={RoutingStack.StasisApp}&appArgs={AsteriskAdapter.Control.CallControl.CreatedMarker},{callId}&channelId=ctl-left", null)).EnsureSuccessStatusCode();
            (await http.PostAsync($"bridges?type=mixing&name={AsteriskAdapter.Control.CallControl.BridgePrefix}{callId}&bridgeId=left-bridge", null)).EnsureSuccessStatusCode();
            (await http.PostAsync($"bridges?type=mixing&name=someone-elses&bridgeId=other-bridge", null)).EnsureSuccessStatusCode();
            Stack.Ari.DisconnectApp(RoutingStack.StasisApp);

            await Stack.StartAdapter();

            await caller.Handover.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(CallStatus.Failed, caller.Variables[CallHandover.StatusVariable]);
            Assert.Equal(DispositionReason.AdapterRestarted, caller.Variables[CallHandover.ReasonVariable]);
            await Stack.Ari.Find("ctl-left")!.Destroyed.WaitAsync(TimeSpan.FromSeconds(10));
            await Eventually.True(() => Stack.Ari.Bridges.All(b => b.Id != "left-bridge"), TimeSpan.FromSeconds(10), "the call's bridge was left");
            Assert.Equal(["other-bridge"], Stack.Ari.Bridges.Select(b => b.Id));
        }
    }
}
