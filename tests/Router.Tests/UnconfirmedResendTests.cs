using System.Collections.Concurrent;
using CallRouter.Messages;
using CallRouter.Router.Transport;
using CallRouter.Tests.Infrastructure;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using Xunit;

namespace CallRouter.Tests;

/// <summary>
/// <see cref="UnconfirmedResender"/> (issue 13): an answer whose send failed because the router's node went away is sent
/// again through the bus, unchanged, to the same reply queue with the same correlation id; other failures are not. The
/// node-kill test in ClusterTests shows why: a claim handled at the kill can be acked while its answer is lost.
/// </summary>
public sealed class UnconfirmedResendTests : RoutingTest
{
    [Fact]
    public async Task An_answer_lost_with_the_connection_is_sent_again_and_one_failed_otherwise_is_not()
    {
        var sent = new ConcurrentQueue<SendContext<ClaimReply>>();
        Stack.Router!.Services.GetRequiredService<IBus>().ConnectSendObserver(new Captured(sent));
        var resender = Stack.Router.Services.GetRequiredService<UnconfirmedResender>();
        var sales = await Stack.AddApp("sales", autoClaim: false);
        var offered = new TaskCompletionSource<CallBroadcast>();
        sales.BroadcastReceived += b => offered.TrySetResult(b);
        var channel = Stack.Ari.Originate(RoutingStack.StasisApp, ["timeout=3000"]);
        var broadcast = await offered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var first = await sales.Claim(broadcast.CallId);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        var answer = Assert.Single(sent);

        // As the send observer hears it when the node is lost under the send.
        await resender.SendFault(answer, new AlreadyClosedException(new ShutdownEventArgs(ShutdownInitiator.Library, 0, "End of stream")));
        await Eventually.True(() => sales.Replies.Count(r => r.CallId == broadcast.CallId) == 2, TimeSpan.FromSeconds(10), "the answer was not sent again");
        await resender.SendFault(answer, new InvalidOperationException("not a lost connection"));
        await Eventually.True(() => resender.Resent == 1, TimeSpan.FromSeconds(10), "the resend was not counted");

        var replies = sales.Replies.Where(r => r.CallId == broadcast.CallId).ToArray();
        Assert.True(first.Accepted);
        Assert.Equal([first, first], replies);
        Assert.Equal(1, resender.Resent);
    }

    private sealed class Captured(ConcurrentQueue<SendContext<ClaimReply>> sent) : ISendObserver
    {
        public Task PreSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;

        public Task PostSend<T>(SendContext<T> context) where T : class
        {
            if (context is SendContext<ClaimReply> reply)
                sent.Enqueue(reply);
            return Task.CompletedTask;
        }

        public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class => Task.CompletedTask;
    }
}
