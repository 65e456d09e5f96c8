using System.Collections.Concurrent;
using System.Diagnostics;

namespace CallRouter.AriSimulator;

/// <summary>Outcome of a REST operation on a channel.</summary>
internal enum ChannelOpResult
{
    Ok,
    NotFound,
    NotInStasis,
}

/// <summary>A simulated Local channel (the ";2" half that runs the dialplan) and what happened to it.</summary>
public sealed class SimChannel
{
    internal const string EntryContext = "from-test";
    private const int StasisPriority = 2;

    private readonly SimulatorCore _core;
    private readonly Lock _gate = new();
    private readonly ConcurrentDictionary<string, string> _variables = new(StringComparer.Ordinal);
    private readonly HashSet<string> _subscribers = new(StringComparer.Ordinal); // guarded by _gate
    private readonly TaskCompletionSource<SimChannel> _handover = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _destroyed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile ChannelFacts _facts;
    private long _stasisStartTimestamp;

    internal SimChannel(SimulatorCore core, string id, string name, string app, IReadOnlyList<string> stasisArgs,
        string extension, string callerNumber, string callerName, string context = EntryContext, int priority = StasisPriority, string state = "Ring")
    {
        _core = core;
        Id = id;
        Name = name;
        Extension = extension;
        CallerNumber = callerNumber;
        CallerName = callerName;
        StasisArgs = stasisArgs;
        CreationTime = AriTime.Now();
        var appData = stasisArgs.Count == 0 ? app : app + "," + string.Join(',', stasisArgs);
        _facts = new ChannelFacts(ChannelPhase.InDialplan, null,
            new DialplanState(context, extension, priority, "Stasis", appData)) { State = state };
    }

    /// <summary>Channel unique id, "EPOCH.SEQ".</summary>
    public string Id { get; }

    /// <summary>Channel name, "Local/EXT@from-test-0000000N;2".</summary>
    public string Name { get; }

    /// <summary>The dialed extension (dialplan.exten).</summary>
    public string Extension { get; }

    /// <summary>Caller id number.</summary>
    public string CallerNumber { get; }

    /// <summary>Caller id name.</summary>
    public string CallerName { get; }

    /// <summary>The Stasis app the channel is in now; null in the dialplan or once destroyed.</summary>
    public string? App => _facts.App;

    /// <summary>Arguments of the Stasis() dialplan application.</summary>
    public IReadOnlyList<string> StasisArgs { get; }

    /// <summary>Channel variables set through REST.</summary>
    public IReadOnlyDictionary<string, string> Variables => _variables;

    /// <summary>"SUCCESS" after continue or move, "FAILED" if the app was not connected at Originate.</summary>
    public string? StasisStatus => _facts.StasisStatus;

    /// <summary>Where a REST continue sent the channel.</summary>
    public DialplanLocation? ContinuedTo => _facts.ContinuedTo;

    /// <summary>Destination app of a successful move.</summary>
    public string? MovedToApp => _facts.MovedToApp;

    /// <summary>Arguments of a successful move.</summary>
    public IReadOnlyList<string>? MovedArgs => _facts.MovedArgs;

    /// <summary>True once the channel is destroyed.</summary>
    public bool HungUp => _facts.Phase == ChannelPhase.Destroyed;

    /// <summary>Cause reported in ChannelDestroyed.</summary>
    public int? HangupCause => _facts.HangupCause;

    /// <summary>Stopwatch.GetTimestamp() when the first StasisStart was handed to the WebSocket (0 if never).</summary>
    public long StasisStartTimestamp => Volatile.Read(ref _stasisStartTimestamp);

    /// <summary>Stopwatch.GetTimestamp() when continue or move was executed (0 if not).</summary>
    public long HandoverTimestamp => _facts.HandoverTimestamp;

    /// <summary>Completes when the channel leaves the first app: continue, successful move, hang-up, or FAILED.</summary>
    public Task<SimChannel> Handover => _handover.Task;

    /// <summary>Completes when the channel is destroyed.</summary>
    public Task Destroyed => _destroyed.Task;

    internal string CreationTime { get; }

    internal ChannelFacts Facts => _facts;

    internal void MarkStasisStartSent() =>
        Interlocked.CompareExchange(ref _stasisStartTimestamp, Stopwatch.GetTimestamp(), 0);

    /// <summary>The dialplan reaches Stasis(app): enter it if the app is connected, otherwise STASISSTATUS=FAILED.</summary>
    internal void RunStasis(string app)
    {
        lock (_gate)
        {
            if (_core.Sockets.IsConnected(app))
            {
                _facts = _facts with { Phase = ChannelPhase.InStasis, App = app };
                Emit(AriEvent.StasisStart(this, _facts, StasisArgs), app, toSubscribers: false);
                return;
            }

            var d = _facts.Dialplan;
            _facts = _facts with
            {
                StasisStatus = "FAILED",
                Dialplan = d with { Priority = d.Priority + 1, AppName = "", AppData = "" },
            };
        }

        _handover.TrySetResult(this);
        _core.AfterHandover(this);
    }

    internal ChannelOpResult SetVariable(string name, string? value)
    {
        lock (_gate)
        {
            var check = CheckInStasis();
            if (check != ChannelOpResult.Ok)
            {
                return check;
            }

            if (value is null)
            {
                _variables.TryRemove(name, out _);
            }
            else
            {
                _variables[name] = value;
            }

            Emit(AriEvent.ChannelVarset(this, _facts, name, value ?? ""), _facts.App, toSubscribers: true);
            return ChannelOpResult.Ok;
        }
    }

    /// <summary>Several variables in one request (ARRAY()), in order, each with its ChannelVarset; all or none.</summary>
    internal ChannelOpResult SetVariables(IReadOnlyList<(string Name, string Value)> variables)
    {
        lock (_gate)
        {
            var check = CheckInStasis();
            if (check != ChannelOpResult.Ok)
            {
                return check;
            }

            foreach (var (name, value) in variables)
            {
                _variables[name] = value;
                Emit(AriEvent.ChannelVarset(this, _facts, name, value), _facts.App, toSubscribers: true);
            }
            return ChannelOpResult.Ok;
        }
    }

    internal bool TryGetVariable(string name, out string value) => _variables.TryGetValue(name, out value!);

    /// <summary>REST continue: back to the dialplan; without a target, the next priority (like res_ari).</summary>
    internal ChannelOpResult Continue(string? context, string? extension, int? priority)
    {
        if (_facts.Phase == ChannelPhase.InStasis)
        {
            _core.Control.LeaveBridge(this);
        }

        lock (_gate)
        {
            var check = CheckInStasis();
            if (check != ChannelOpResult.Ok)
            {
                return check;
            }

            var d = _facts.Dialplan;
            var sameSpot = string.IsNullOrEmpty(context) && string.IsNullOrEmpty(extension);
            var target = new DialplanLocation(
                string.IsNullOrEmpty(context) ? d.Context : context,
                string.IsNullOrEmpty(extension) ? d.Exten : extension,
                priority ?? (sameSpot ? d.Priority + 1 : 1));

            var app = _facts.App!;
            Emit(AriEvent.StasisEnd(this, _facts), app, toSubscribers: false);
            _facts = _facts with
            {
                Phase = ChannelPhase.InDialplan,
                App = null,
                StasisStatus = "SUCCESS",
                ContinuedTo = target,
                HandoverTimestamp = FirstHandoverTimestamp(),
                Dialplan = new DialplanState(target.Context, target.Extension, target.Priority, "", ""),
            };
        }

        _handover.TrySetResult(this);
        _core.AfterHandover(this);
        return ChannelOpResult.Ok;
    }

    /// <summary>REST move: to another connected app, or ApplicationMoveFailed (the channel stays put).</summary>
    internal ChannelOpResult Move(string destination, IReadOnlyList<string> args)
    {
        lock (_gate)
        {
            var check = CheckInStasis();
            if (check != ChannelOpResult.Ok)
            {
                return check;
            }

            var source = _facts.App!;
            if (!_core.Sockets.IsConnected(destination))
            {
                Emit(AriEvent.ApplicationMoveFailed(this, _facts, destination, args), source, toSubscribers: false);
                return ChannelOpResult.Ok;
            }

            Emit(AriEvent.StasisEnd(this, _facts), source, toSubscribers: false);
            _facts = _facts with
            {
                App = destination,
                StasisStatus = "SUCCESS",
                MovedToApp = destination,
                MovedArgs = args,
                HandoverTimestamp = FirstHandoverTimestamp(),
            };
            Emit(AriEvent.StasisStart(this, _facts, args), destination, toSubscribers: false);
        }

        _handover.TrySetResult(this);
        _core.AfterHandover(this);
        return ChannelOpResult.Ok;
    }

    /// <summary>
    /// Hangs the channel up: ChannelHangupRequest (app and subscribers), StasisEnd (if in Stasis),
    /// ChannelDestroyed (subscribers). False if it was already destroyed.
    /// </summary>
    internal bool Hangup(int requestCause, bool soft, int destroyCause)
    {
        _core.Control.LeaveBridge(this);
        string[] subscribers;
        lock (_gate)
        {
            if (_facts.Phase == ChannelPhase.Destroyed)
            {
                return false;
            }

            var app = _facts.Phase == ChannelPhase.InStasis ? _facts.App : null;
            Emit(AriEvent.ChannelHangupRequest(this, _facts, requestCause, soft), app, toSubscribers: true);
            if (app is not null)
            {
                Emit(AriEvent.StasisEnd(this, _facts), app, toSubscribers: false);
            }

            _facts = _facts with { Phase = ChannelPhase.Destroyed, App = null, HangupCause = destroyCause };
            Emit(AriEvent.ChannelDestroyed(this, _facts, destroyCause), null, toSubscribers: true);
            subscribers = [.. _subscribers];
            _subscribers.Clear();
        }

        // Subscriptions remove themselves when the channel is destroyed.
        foreach (var app in subscribers)
        {
            _core.Subscriptions.Remove(app, Id);
        }

        _core.Forget(this);
        _handover.TrySetResult(this);
        _destroyed.TrySetResult();
        return true;
    }

    /// <summary>Subscribes an app to this channel's events; false if the channel is already destroyed.</summary>
    internal bool Subscribe(string app)
    {
        lock (_gate)
        {
            if (_facts.Phase == ChannelPhase.Destroyed)
            {
                return false;
            }

            _subscribers.Add(app);
            _core.Subscriptions.Add(app, Id);
            return true;
        }
    }

    internal void Unsubscribe(string app)
    {
        lock (_gate)
        {
            _subscribers.Remove(app);
            _core.Subscriptions.Remove(app, Id);
        }
    }

    /// <summary>Current ARI state ("Ring", "Down", "Up").</summary>
    public string State => _facts.State;

    /// <summary>The bridge the channel is in, if any.</summary>
    public string? BridgeId { get; internal set; }

    /// <summary>The caller presses a key: ChannelDtmfReceived to the channel's app.</summary>
    public void PressDigit(char digit) => _core.Control.DtmfReceived(this, digit);

    /// <summary>Sets the ARI state; ChannelStateChange if it changed. False if the channel is gone.</summary>
    internal bool SetState(string state)
    {
        lock (_gate)
        {
            if (_facts.Phase == ChannelPhase.Destroyed)
            {
                return false;
            }

            if (_facts.State != state)
            {
                _facts = _facts with { State = state };
                Emit(AriEvent.ChannelStateChange(this, _facts), _facts.App, toSubscribers: true);
            }

            return true;
        }
    }

    /// <summary>Sends an event about this channel, written by <paramref name="frameFor"/> per application, in order with its other events.</summary>
    internal void Announce(Func<string, byte[]> frameFor)
    {
        lock (_gate)
        {
            if (_facts.App is { } app)
            {
                _core.PublishFrame(app, frameFor(app));
            }

            foreach (var subscriber in _subscribers)
            {
                if (subscriber != _facts.App)
                {
                    _core.PublishFrame(subscriber, frameFor(subscriber));
                }
            }
        }
    }

    internal ChannelOpResult CheckControllable()
    {
        lock (_gate)
        {
            return CheckInStasis();
        }
    }

    // A channel moved to another app may be continued later; the handover we measure is the first one.
    private long FirstHandoverTimestamp() =>
        _facts.HandoverTimestamp != 0 ? _facts.HandoverTimestamp : Stopwatch.GetTimestamp();

    private ChannelOpResult CheckInStasis() => _facts.Phase switch
    {
        ChannelPhase.InStasis => ChannelOpResult.Ok,
        ChannelPhase.Destroyed => ChannelOpResult.NotFound,
        _ => ChannelOpResult.NotInStasis,
    };

    // Called under _gate, so the events of one channel reach every socket in the order they happened.
    private void Emit(AriEvent e, string? app, bool toSubscribers)
    {
        if (app is not null)
        {
            _core.Publish(app, e);
        }

        if (!toSubscribers)
        {
            return;
        }

        foreach (var subscriber in _subscribers)
        {
            if (subscriber != app)
            {
                _core.Publish(subscriber, e);
            }
        }
    }
}
