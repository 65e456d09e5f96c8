using System.Text.Json;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.AsteriskAdapter.Control;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// The router's decision for a call (ContinueCall): hands the channel over as it says (continue, move, or to its
/// controlling app), unless another ending came first. A command that cannot be read is parked.
/// </summary>
public sealed class RouterCommandHandler(AdapterBroker broker, CallBook book, CallHandover handover, CallEndings endings, CallControl control,
    ILogger<RouterCommandHandler> logger)
{
    public async Task Handle(BasicDeliverEventArgs delivery)
    {
        ContinueCall? command;
        try
        {
            command = JsonSerializer.Deserialize<ContinueCall>(delivery.Body.Span, Wire.Json);
        }
        catch (JsonException exception)
        {
            await broker.Park(delivery, broker.CommandErrorQueue, $"not a ContinueCall: {exception.Message}");
            return;
        }
        if (command is null || command.CallId == Guid.Empty || string.IsNullOrEmpty(command.Status) || string.IsNullOrEmpty(command.ChannelId))
        {
            await broker.Park(delivery, broker.CommandErrorQueue, "ContinueCall needs callId, channelId and status");
            return;
        }

        if (command.Control && command.Status == CallStatus.Success && command.Winner is not null
            && book.TryGet(command.CallId, out var controlled) && controlled.TryFinish())
        {
            book.Remove(controlled);
            try
            {
                await control.Take(controlled, command);
            }
            catch (Exception exception)
            {
                logger.LogError(exception, "Handing call {CallId} to its controller failed", controlled.CallId);
            }
            await broker.Ack(delivery);
            return;
        }
        if (book.TryGet(command.CallId, out var call) && call.TryFinish())
        {
            var decision = new Decision(command.Status, command.Reason ?? "", command.Winner, call.Options.Args,
                Target: command.Target, MoveToApp: command.MoveToApp, AppArgs: command.AppArgs, ClaimedAt: command.ClaimedAt);
            call.Winner = command.Winner;
            call.Moving = command.MoveToApp is not null;
            // The call stays in the book while it is handed over, so a reconnect meanwhile does not take it for a leftover.
            // A move whose answer was lost went through if its StasisEnd removed the call from the book meanwhile.
            var result = await handover.Execute(call.ChannelId, call.CallIdToSet, decision, moved: () => !book.TryGetByChannel(call.ChannelId, out _));
            if (call.Moving && (!result.HandedOver || result.Final.MoveToApp is null))
                call.Moving = false; // not moved (gone, or fallen back to the dialplan): nothing more to wait for
            if (!call.Moving)
                book.Remove(call);
            // A move is counted when its StasisEnd confirms it (an ApplicationMoveFailed may come instead).
            if (!call.Moving)
                endings.Ended(call, result);
            endings.TellWinner(call, result.Final);
        }
        await broker.Ack(delivery);
    }
}
