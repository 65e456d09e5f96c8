using CallRouter.AsteriskAdapter.Ari;
using CallRouter.AsteriskAdapter.Broker;
using CallRouter.AsteriskAdapter.Control;
using CallRouter.Messages;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client.Events;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>
/// Runs the adapter: connects to RabbitMQ and ARI, and routes each ARI event and each broker delivery to the class that
/// handles its kind. Between them they make sure every channel that enters the router's app leaves it: by the router's
/// decision (<see cref="RouterCommandHandler"/>), by the adapter's fallback at the deadline plus a grace or at once
/// (<see cref="CallEndings"/>), by a hang-up (<see cref="ChannelEndHandler"/>), or at (re)connect for channels an
/// earlier run left behind (<see cref="ConnectRecovery"/>).
/// </summary>
public sealed class CallDispatcher(
    AriEventStream events,
    AdapterBroker broker,
    BrokerOutbox outbox,
    LiveApps live,
    CallControl control,
    ControlCommandHandler controlCommands,
    StasisStartHandler stasisStart,
    ChannelEndHandler channelEnds,
    RouterCommandHandler commands,
    ClaimTallyHandler tallies,
    HeartbeatHandler heartbeats,
    ConnectRecovery recovery,
    CallRecorder recorder,
    BackgroundWork work,
    RouterBacklog backlog,
    IOptions<AdapterOptions> options,
    ILogger<CallDispatcher> logger) : BackgroundService
{
    /// <summary>Entries in the recovered-channel set (for tests: it must not grow).</summary>
    internal int RecoveredCount => recovery.RecoveredCount;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        if (o.Node == AdapterOptions.DefaultNode && o.AriUrl != new Uri(AdapterOptions.DefaultAriUrl))
            logger.LogWarning("Adapter__Node is the default '{Node}' with a configured ARI address ({Host}): with several Asterisks, give each adapter its own node id, or they share one command queue and take each other's decisions",
                o.Node, o.AriUrl.Host);
        await broker.Start(OnCommand, heartbeats.Handle, live.StartLearning, stoppingToken);
        live.StartLearning();
        var outboxRun = outbox.Run(stoppingToken);
        await controlCommands.Start(stoppingToken);
        var liveness = control.WatchLiveness(stoppingToken);
        var backlogWatch = backlog.Watch(stoppingToken);
        await events.Run(recovery.Recover, OnEvent, stoppingToken);
        await liveness;
        await backlogWatch;
        await control.StopAll();
        await work.Drain();
        await outboxRun;
    }

    private async Task OnEvent(AriEvent e)
    {
        if (await control.OnEvent(e))
        {
            if (e.Type == "ChannelDestroyed" && e.Channel is { } gone)
                recorder.Destroyed(gone.Id, e.Timestamp, e.Cause, e.CauseText);
            return;
        }
        if (e.Channel is not { } channel)
            return;
        switch (e.Type)
        {
            case "StasisStart":
                await stasisStart.Offer(channel, e.Args, e.AsteriskId ?? "");
                break;
            case "ChannelHangupRequest" or "StasisEnd" or "ChannelDestroyed":
                channelEnds.Ended(e, channel);
                break;
            case "ApplicationMoveFailed":
                channelEnds.MoveFailed(e, channel);
                break;
        }
    }

    private async Task OnCommand(BasicDeliverEventArgs delivery)
    {
        // JSON is UTF-8 (RFC 8259); the reader would skip a bad byte inside a field it ignores, so check the whole body.
        if (!System.Text.Unicode.Utf8.IsValid(delivery.Body.Span))
        {
            await broker.Park(delivery, broker.CommandErrorQueue, "not a command: the body is not UTF-8");
            return;
        }
        if (delivery.BasicProperties.Type is Topology.Types.ClaimTallies or Topology.Types.ClaimTally)
            await tallies.Handle(delivery);
        else
            await commands.Handle(delivery);
    }
}
