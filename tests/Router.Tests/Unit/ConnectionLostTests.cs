using CallRouter.Router.Transport;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary>
/// <see cref="Outbound.ConnectionLost"/>: which failures mean "the router's node went away" (the message is handled again
/// on the next node, an unconfirmed answer is sent again) and which do not (answered "unavailable" and parked).
/// </summary>
public sealed class ConnectionLostTests
{
    private static readonly ShutdownEventArgs EndOfStream = new(ShutdownInitiator.Library, 0, "End of stream");

    [Fact]
    public void A_closed_channel_or_connection_is_a_lost_connection_also_when_wrapped()
    {
        Assert.True(Outbound.ConnectionLost(new AlreadyClosedException(EndOfStream)));
        Assert.True(Outbound.ConnectionLost(new OperationInterruptedException(EndOfStream)));
        Assert.True(Outbound.ConnectionLost(new InvalidOperationException("outbox", new AlreadyClosedException(EndOfStream))));
    }

    [Fact]
    public void A_send_cancelled_by_its_send_deadline_is_a_lost_connection()
    {
        var deadline = Outbound.SendDeadline();

        Assert.True(Outbound.ConnectionLost(new OperationCanceledException(deadline)));
        Assert.True(Outbound.ConnectionLost(new TaskCanceledException("send", new OperationCanceledException(deadline))));
    }

    // Before, any cancellation counted: a claim cancelled for another reason went back to the queue again and again.
    [Fact]
    public void Any_other_cancellation_or_failure_is_not()
    {
        using var other = new CancellationTokenSource();
        other.Cancel();

        Assert.False(Outbound.ConnectionLost(new OperationCanceledException(other.Token)));
        Assert.False(Outbound.ConnectionLost(new OperationCanceledException()));
        Assert.False(Outbound.ConnectionLost(new TimeoutException("database")));
    }
}
