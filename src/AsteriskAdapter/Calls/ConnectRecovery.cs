using System.Collections.Concurrent;
using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Control;
using CallRouter.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// At every ARI (re)connect: channels an earlier run (or the gap) left in the app are failed as adapter-restarted,
/// calls whose channel went away unheard leave the book, and open CDR drafts are finished or subscribed again.
/// </summary>
public sealed class ConnectRecovery(AriClient ari, CallBook book, ReleasedChannels releasedChannels, CallRecorder recorder,
    ChannelSubscriber subscriber, CallEndings endings, CallControl control, TimeProvider clock, IOptions<AdapterOptions> options, ILogger<ConnectRecovery> logger)
{
    /// <summary>
    /// Channels failed at (re)connect as left behind, whose StasisStart may still arrive on the new socket: kept only
    /// until then, their StasisEnd, or the next reconnect (which replaces the set), so it never grows.
    /// </summary>
    private ConcurrentDictionary<string, bool> _recovered = new(StringComparer.Ordinal);

    /// <summary>Entries in the recovered-channel set (for tests: it must not grow).</summary>
    internal int RecoveredCount => _recovered.Count;

    /// <summary>Forgets a recovered channel (its StasisStart or StasisEnd came); true if it was one.</summary>
    public bool Forget(string channelId) => _recovered.TryRemove(channelId, out _);

    /// <summary>Channels still in the app from before this connection have no broadcast behind them: fall them back now.</summary>
    public async Task Recover(DateTimeOffset connectedAt, CancellationToken cancellationToken)
    {
        // The list is stale as soon as it is taken: a call handed over meanwhile is still in it, though no longer tracked.
        using var released = releasedChannels.Start();
        IReadOnlyList<AriChannel> channels;
        try
        {
            channels = await ari.ListChannels(cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            logger.LogWarning("Could not list channels to recover: {Error}", exception.Message);
            return;
        }
        var recovered = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        _recovered = recovered;
        foreach (var channel in channels)
        {
            var inOurApp = channel.AppName == "Stasis" && channel.AppData.Split(',')[0] == options.Value.App;
            if (!inOurApp || channel.CreatedAt >= connectedAt || IsTracked(channel.Id, released))
                continue;
            if (control.RecoverCreated(channel))
                continue;
            recovered[channel.Id] = true;
            endings.FailAtOnce(channel, DispositionReason.AdapterRestarted, "the channel was left in the router's app by an earlier adapter run",
                knownCallId: await CallIdOn(channel.Id, cancellationToken));
        }

        try
        {
            await control.RecoverBridges();
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            logger.LogWarning("Could not list bridges to recover: {Error}", exception.Message);
        }

        // Calls from before this connection whose CDR is still open: those that ended while the event socket was down
        // get their end now (cause unknown); the others are subscribed again, in case Asterisk dropped the subscriptions.
        var alive = channels.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        // Calls whose channel went away while the socket was down (their StasisEnd was never heard) leave the book now.
        foreach (var call in book.All())
            if (!alive.Contains(call.ChannelId) && call.BroadcastAt < connectedAt)
                endings.Abandon(call, "ChannelDestroyed");
        foreach (var channelId in recorder.OpenChannels(before: connectedAt))
        {
            if (!alive.Contains(channelId))
                recorder.Destroyed(channelId, clock.GetUtcNow(), null, "ended while the adapter was not connected to ARI");
            else
                subscriber.Subscribe(channelId);
        }
    }

    /// <summary>True when this run tracks the channel, or released it after the channel list was taken.</summary>
    private bool IsTracked(string channelId, ReleasedChannels.Watch released) =>
        book.TryGetByChannel(channelId, out _) || endings.IsFailing(channelId) || control.Owns(channelId) || released.Contains(channelId);

    /// <summary>The call id an earlier adapter run put on the channel when it broadcast the call, if any.</summary>
    private async Task<Guid?> CallIdOn(string channelId, CancellationToken cancellationToken)
    {
        try
        {
            return Guid.TryParse(await ari.GetVariable(channelId, CallHandover.CallIdVariable, cancellationToken), out var id) ? id : null;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Could not read {Variable} of channel {ChannelId}: {Error}", CallHandover.CallIdVariable, channelId, exception.Message);
            return null;
        }
    }
}
