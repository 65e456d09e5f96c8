using CallRouter.AsteriskAdapter.Ari;
using CallRouter.Messages;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// A channel leaving the app other than by a handover: hang-up request, StasisEnd and ChannelDestroyed (the call is
/// abandoned, its CDR gets its end), and ApplicationMoveFailed (a move to the winner's app is refused: FAILED/move-failed).
/// </summary>
public sealed class ChannelEndHandler(CallBook book, CallRecorder recorder, CallHandover handover, CallEndings endings,
    StasisStartHandler offers, ConnectRecovery recovery, BackgroundWork work)
{
    /// <summary>ChannelHangupRequest, StasisEnd or ChannelDestroyed.</summary>
    public void Ended(AriEvent e, AriChannel channel)
    {
        if (e.Type == "ChannelHangupRequest")
            recorder.HangupRequested(channel.Id, e.Timestamp, e.Cause);
        else
            recovery.Forget(channel.Id);
        offers.HungUp(channel);
        if (book.TryGetByChannel(channel.Id, out var call))
            endings.Abandon(call, e.Type);
        if (e.Type == "ChannelDestroyed")
            recorder.Destroyed(channel.Id, e.Timestamp, e.Cause, e.CauseText);
    }

    public void MoveFailed(AriEvent e, AriChannel channel)
    {
        if (!book.TryGetByChannel(channel.Id, out var moving) || !moving.Moving)
            return;
        moving.Moving = false;
        book.Remove(moving);
        // The winner stays in the CDR and in ROUTER_WINNER: it was told `accepted`.
        var decision = new Decision(CallStatus.Failed, DispositionReason.MoveFailed, moving.Winner, moving.Options.Args,
            $"app '{e.Destination}' is not connected");
        work.Run(async () =>
        {
            var result = await handover.Execute(channel.Id, moving.CallId, decision);
            endings.Ended(moving, result);
            endings.TellWinner(moving, result.Final);
        }, "move fallback");
    }
}
