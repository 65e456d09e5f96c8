using CallRouter.AsteriskAdapter.Ari;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// Makes sure no CDR draft waits forever for a ChannelDestroyed that will not come (missed in an ARI reconnect, or its
/// channel subscription failed or was shed): every quarter of <see cref="AdapterOptions.DraftCheckAfter"/> it asks ARI
/// about the drafts due (GET /channels/{id}, background lane). A channel that is gone gets its record finished, marked
/// <see cref="FoundGone"/>; one still up whose subscription had failed is subscribed again.
/// </summary>
public sealed class DraftCheck(CallRecorder recorder, AriClient ari, TimeProvider clock, IOptions<AdapterOptions> options, ILogger<DraftCheck> logger)
    : BackgroundService
{
    /// <summary>The hang-up cause text of a record finished by a check (its cause is the ChannelHangupRequest's, if one was heard).</summary>
    public const string FoundGone = "ChannelDestroyed not heard: the adapter found the channel gone";

    private readonly AdapterOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.RecordCalls)
            return;
        var every = _options.DraftCheckAfter / 4;
        using var timer = new PeriodicTimer(every > TimeSpan.FromMilliseconds(50) ? every : TimeSpan.FromMilliseconds(50), clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
                await Task.WhenAll(recorder.DueForCheck().Select(d => Check(d.ChannelId, d.Unwatched, stoppingToken)));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task Check(string channelId, bool unwatched, CancellationToken cancellationToken)
    {
        try
        {
            if (!await ari.ChannelExists(channelId, cancellationToken))
            {
                logger.LogInformation("Channel {ChannelId} is gone but its ChannelDestroyed was not heard: its call record is finished now", channelId);
                recorder.Gone(channelId, FoundGone);
                return;
            }
            if (!unwatched)
                return;
            if (await ari.Subscribe(_options.App, channelId) == AriOutcome.Done)
                recorder.Watched(channelId);
            else
                recorder.Gone(channelId, FoundGone);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Shed, failed or timed out: the draft is due again a DraftCheckAfter later (an unwatched one sooner, see Unwatched).
            logger.LogDebug("Could not check channel {ChannelId}: {Error}", channelId, exception.Message);
            if (unwatched)
                recorder.Unwatched(channelId);
        }
    }
}
