using CallRouter.AsteriskAdapter.Broker;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>An app's heartbeat: it is live (or, when stopping, gone). A heartbeat that cannot be used is parked.</summary>
public sealed class HeartbeatHandler(AdapterBroker broker, HeartbeatReader reader, LiveApps live)
{
    public async Task Handle(BasicDeliverEventArgs delivery)
    {
        var (heartbeat, error) = reader.Read(delivery.Body.Span, delivery.BasicProperties.UserId);
        if (error is not null)
        {
            await broker.Park(delivery, broker.HeartbeatErrorQueue, error);
            return;
        }
        if (string.Equals(heartbeat!.Status, "stopping", StringComparison.OrdinalIgnoreCase))
            live.Gone(heartbeat.App);
        else
            live.Seen(heartbeat.App);
        await broker.Ack(delivery);
    }
}
