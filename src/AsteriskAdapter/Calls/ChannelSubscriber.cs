using CallRouter.AsteriskAdapter.Ari;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// Subscribes the adapter's app to a channel so it hears its ChannelDestroyed even after it leaves Stasis, for its CDR
/// (a background ARI request). A subscription that fails or is shed loses no CDR: the draft is marked unwatched, and
/// <see cref="DraftCheck"/> subscribes it again or finishes it once the channel is gone.
/// </summary>
public sealed class ChannelSubscriber(AriClient ari, CallRecorder recorder, BackgroundWork work, TimeProvider clock,
    IOptions<AdapterOptions> options, IHostApplicationLifetime lifetime, ILogger<ChannelSubscriber> logger)
{
    /// <summary>Starts the subscription off the event loop (when the adapter keeps CDRs).</summary>
    public void Subscribe(string channelId)
    {
        if (options.Value.RecordCalls)
            work.Run(() => SubscribeNow(channelId), "channel subscription");
    }

    private async Task SubscribeNow(string channelId)
    {
        try
        {
            if (await ari.Subscribe(options.Value.App, channelId) == AriOutcome.ChannelGone)
                recorder.Destroyed(channelId, clock.GetUtcNow(), null, null);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !lifetime.ApplicationStopping.IsCancellationRequested)
        {
            logger.LogWarning("Channel {ChannelId}: subscription for its CDR failed ({Error}); the draft check will look after it", channelId, exception.Message);
            recorder.Unwatched(channelId);
        }
    }
}
