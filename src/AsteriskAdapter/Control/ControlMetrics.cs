using System.Diagnostics.Metrics;
using CallRouter.AsteriskAdapter.Observability;

namespace CallRouter.AsteriskAdapter.Control;

/// <summary>Call control's instruments, on the adapter's meter: commands by outcome, endings by reason, calls under control now.</summary>
public sealed class ControlMetrics
{
    private readonly Counter<long> _commands;
    private readonly Counter<long> _endings;

    public ControlMetrics(IMeterFactory meters, ControlSessions sessions)
    {
        var meter = meters.Create(AdapterMetrics.MeterName);
        _commands = meter.CreateCounter<long>("callrouter.adapter.control_commands", "{command}",
            "Control commands answered, by command and outcome (ok or the refusal reason)");
        _endings = meter.CreateCounter<long>("callrouter.adapter.control_endings", "{call}", "Controlled calls ended, by CallControlEnded reason");
        meter.CreateObservableGauge("callrouter.adapter.controlled_calls", () => sessions.Count, "{call}", "Calls an app controls now");
    }

    public void Answered(string? command, string outcome) =>
        _commands.Add(1, new KeyValuePair<string, object?>("command", command ?? ""), new KeyValuePair<string, object?>("outcome", outcome));

    public void Ended(string reason) => _endings.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
