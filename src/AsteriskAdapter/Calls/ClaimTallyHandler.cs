using System.Text.Json;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.Messages;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// The router's counts of calls' claims, for their CDRs: a batch (ClaimTallies) or, from a router before batches, one
/// (ClaimTally). A message that cannot be read, or that holds a tally that cannot be, is parked whole.
/// </summary>
public sealed class ClaimTallyHandler(AdapterBroker broker, CallRecorder recorder)
{
    public async Task Handle(BasicDeliverEventArgs delivery)
    {
        var batch = delivery.BasicProperties.Type == Topology.Types.ClaimTallies;
        IReadOnlyList<ClaimTally?>? tallies = null;
        try
        {
            tallies = batch
                ? (IReadOnlyList<ClaimTally?>?)JsonSerializer.Deserialize<ClaimTallies>(delivery.Body.Span, Wire.Json)?.Tallies
                : [JsonSerializer.Deserialize<ClaimTally>(delivery.Body.Span, Wire.Json)];
        }
        catch (JsonException)
        {
        }
        if (tallies is null || tallies.Any(t => t is null || t.CallId == Guid.Empty || t.Claims < 0))
        {
            await broker.Park(delivery, broker.CommandErrorQueue, batch
                ? "not a ClaimTallies: needs tallies, each with callId and claims >= 0"
                : "not a ClaimTally: needs callId and claims >= 0");
            return;
        }
        foreach (var tally in tallies)
            recorder.Tallied(tally!.CallId, tally.Claims);
        await broker.Ack(delivery);
    }
}
