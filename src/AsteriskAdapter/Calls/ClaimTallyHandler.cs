using System.Text.Json;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.Messages;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>The router's count of a call's claims (ClaimTally), for its CDR. A tally that cannot be read is parked.</summary>
public sealed class ClaimTallyHandler(AdapterBroker broker, CallRecorder recorder)
{
    public async Task Handle(BasicDeliverEventArgs delivery)
    {
        ClaimTally? tally = null;
        try
        {
            tally = JsonSerializer.Deserialize<ClaimTally>(delivery.Body.Span, Wire.Json);
        }
        catch (JsonException)
        {
        }
        if (tally is null || tally.CallId == Guid.Empty || tally.Claims < 0)
        {
            await broker.Park(delivery, broker.CommandErrorQueue, "not a ClaimTally: needs callId and claims >= 0");
            return;
        }
        recorder.Tallied(tally.CallId, tally.Claims);
        await broker.Ack(delivery);
    }
}
