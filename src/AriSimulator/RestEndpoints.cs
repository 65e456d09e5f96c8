using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace CallRouter.AriSimulator;

/// <summary>The one request handler: authentication, then the ARI routes the router uses.</summary>
internal sealed class RestEndpoints(SimulatorCore core, BasicAuth auth, CancellationToken stopping)
{
    private const string Prefix = "/ari/";
    private int _requestCount;
    private int _faults;

    public int RequestCount => Volatile.Read(ref _requestCount);

    /// <summary>Faults injected so far.</summary>
    public int FaultCount => Volatile.Read(ref _faults);

    /// <summary>Chooses the fault (if any) for each REST request.</summary>
    public AriFaultInjector? Faults { get; set; }

    /// <summary>Every /ari/events request: its query string and whether it authenticated with an Authorization header.</summary>
    public ConcurrentQueue<(string Query, bool HeaderAuth)> EventRequests { get; } = new();

    public async Task HandleAsync(HttpContext http)
    {
        var path = http.Request.Path.Value ?? "";
        var route = path.StartsWith(Prefix, StringComparison.Ordinal) ? path[Prefix.Length..].Split('/', StringSplitOptions.RemoveEmptyEntries) : [];
        if (route is ["events"])
            EventRequests.Enqueue((http.Request.QueryString.Value ?? "", http.Request.Headers.Authorization.Count > 0));
        var fault = route is not ([] or ["events"]) && auth.IsAuthorized(http.Request)
            ? Faults?.Invoke(route[^1], route is ["channels", var id, ..] ? id : null)
            : null;
        if (fault is null)
        {
            await HandleOnceAsync(http).ConfigureAwait(false);
            return;
        }

        Interlocked.Increment(ref _faults);
        switch (fault.Kind)
        {
            case AriFaultKind.ServerError:
                Interlocked.Increment(ref _requestCount);
                await HttpJson.WriteAsync(http, StatusCodes.Status500InternalServerError, HttpJson.InternalError).ConfigureAwait(false);
                return;
            case AriFaultKind.Reset:
                Interlocked.Increment(ref _requestCount);
                http.Abort();
                return;
            case AriFaultKind.SlowAnswer:
                // The answer is written aside and sent after the wait, so no byte of it (a body included) leaves early.
                var body = http.Response.Body;
                using (var answer = new MemoryStream())
                {
                    http.Response.Body = answer;
                    await HandleOnceAsync(http).ConfigureAwait(false);
                    await Wait(fault, http).ConfigureAwait(false);
                    http.Response.Body = body;
                    answer.Position = 0;
                    await answer.CopyToAsync(body, http.RequestAborted).ConfigureAwait(false);
                }
                return;
            case AriFaultKind.SlowStart:
                await Wait(fault, http).ConfigureAwait(false);
                await HandleOnceAsync(http).ConfigureAwait(false);
                return;
        }
    }

    private async Task Wait(AriFault fault, HttpContext http)
    {
        using var both = CancellationTokenSource.CreateLinkedTokenSource(stopping, http.RequestAborted);
        try
        {
            await (fault.Until is { } until ? until().WaitAsync(both.Token) : Task.Delay(fault.Delay, both.Token)).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private Task HandleOnceAsync(HttpContext http)
    {
        var path = http.Request.Path.Value ?? "";
        if (!path.StartsWith(Prefix, StringComparison.Ordinal))
        {
            http.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }

        var route = path[Prefix.Length..].Split('/', StringSplitOptions.RemoveEmptyEntries);
        var isEvents = route is ["events"] && HttpMethods.IsGet(http.Request.Method);
        if (!isEvents)
        {
            Interlocked.Increment(ref _requestCount);
        }

        if (!auth.IsAuthorized(http.Request))
        {
            return HttpJson.Unauthorized(http);
        }

        if (isEvents)
        {
            return core.Sockets.AcceptAsync(http, stopping);
        }

        return (route, http.Request.Method) switch
        {
            (["channels"], "GET") => HttpJson.WriteAsync(http, 200, AriJson.Channels(core.LiveChannels)),
            (["channels", var id], "GET") => GetChannel(http, id),
            (["channels", var id], "DELETE") => DeleteChannel(http, id),
            (["channels", var id, "variable"], "GET") => GetVariable(http, id),
            (["channels", var id, "variable"], "POST") => SetVariable(http, id),
            (["channels", var id, "continue"], "POST") => Continue(http, id),
            (["channels", var id, "move"], "POST") => Move(http, id),
            (["applications", var app, "subscription"], "POST") => Subscription(http, app, subscribe: true),
            (["applications", var app, "subscription"], "DELETE") => Subscription(http, app, subscribe: false),
            (["applications", var app], "GET") => GetApplication(http, app),
            (["asterisk", "ping"], "GET") => HttpJson.WriteAsync(http, 200, AriJson.Ping(core.AsteriskId)),
            _ => core.Control.Routes.HandleAsync(http, route),
        };
    }

    private Task GetChannel(HttpContext http, string id) =>
        core.FindLive(id) is { } ch
            ? HttpJson.WriteAsync(http, 200, AriJson.Channel(ch))
            : HttpJson.WriteAsync(http, 404, HttpJson.ChannelNotFound);

    private Task DeleteChannel(HttpContext http, string id)
    {
        var query = http.Request.Query;
        var cause = 16;
        if (int.TryParse(query["reason_code"].ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var code))
        {
            cause = code;
        }
        else if (query.TryGetValue("reason", out var reason))
        {
            if (AriTime.CauseOfReason(reason.ToString()) is not { } mapped)
            {
                return HttpJson.WriteAsync(http, 400, HttpJson.InvalidReason);
            }

            cause = mapped;
        }

        // ARI hangs up softly (AST_SOFTHANGUP_EXPLICIT = 32) after setting the Q.850 cause.
        return core.FindLive(id) is { } ch && ch.Hangup(requestCause: 32, soft: true, destroyCause: cause)
            ? HttpJson.NoContent(http)
            : HttpJson.WriteAsync(http, 404, HttpJson.ChannelNotFound);
    }

    private Task GetVariable(HttpContext http, string id)
    {
        var name = http.Request.Query["variable"].ToString();
        if (name.Length == 0)
        {
            return HttpJson.WriteAsync(http, 400, HttpJson.VariableRequired);
        }

        if (core.FindLive(id) is not { } ch)
        {
            return HttpJson.WriteAsync(http, 404, HttpJson.ChannelNotFound);
        }

        return ch.TryGetVariable(name, out var value)
            ? HttpJson.WriteAsync(http, 200, AriJson.Variable(value))
            : HttpJson.WriteAsync(http, 404, HttpJson.VariableNotFound);
    }

    private Task SetVariable(HttpContext http, string id)
    {
        var query = http.Request.Query;
        var name = query["variable"].ToString();
        if (name.Length == 0)
        {
            return HttpJson.WriteAsync(http, 400, HttpJson.VariableRequired);
        }

        var value = query.TryGetValue("value", out var v) ? v.ToString() : null;
        if (name.EndsWith(')'))
        {
            var array = ArrayWrite(name, value);
            if (array is null)
            {
                return core.FindLive(id) is null
                    ? HttpJson.WriteAsync(http, 404, HttpJson.ChannelNotFound)
                    : HttpJson.WriteAsync(http, 400, HttpJson.FunctionFailed);
            }
            if (array.Count > 0)
            {
                return Answer(http, core.FindLive(id)?.SetVariables(array));
            }
        }
        return Answer(http, core.FindLive(id)?.SetVariable(name, value));
    }

    /// <summary>
    /// ARRAY(A,B,…)=a,b,…: the variables it sets, in order (a missing value sets ""); null when the function is not there.
    /// Empty for any other function (the simulator stores it as a plain variable). Quoting inside values is not modelled.
    /// </summary>
    private List<(string Name, string Value)>? ArrayWrite(string name, string? value)
    {
        if (!name.StartsWith("ARRAY(", StringComparison.Ordinal))
        {
            return core.ArrayFunction ? [] : null;
        }
        if (!core.ArrayFunction)
        {
            return null;
        }
        var names = name["ARRAY(".Length..^1].Split(',');
        var values = (value ?? "").Split(',');
        return [.. names.Select((n, i) => (n, i < values.Length ? values[i] : ""))];
    }

    private Task Continue(HttpContext http, string id)
    {
        var query = http.Request.Query;
        int? priority = null;
        if (query.TryGetValue("priority", out var p) && p.ToString().Length > 0)
        {
            if (!int.TryParse(p.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed))
            {
                return HttpJson.WriteAsync(http, 400, HttpJson.InvalidPriority);
            }

            priority = parsed;
        }

        var result = core.FindLive(id)?.Continue(query["context"].ToString(), query["extension"].ToString(), priority);
        return Answer(http, result);
    }

    private Task Move(HttpContext http, string id)
    {
        var query = http.Request.Query;
        var app = query["app"].ToString();
        if (app.Length == 0)
        {
            return HttpJson.WriteAsync(http, 400, HttpJson.MissingApp);
        }

        var args = query["appArgs"].ToString().Split(',', StringSplitOptions.RemoveEmptyEntries);
        return Answer(http, core.FindLive(id)?.Move(app, args));
    }

    private Task Subscription(HttpContext http, string app, bool subscribe)
    {
        var sources = http.Request.Query["eventSource"].ToString().Split(',', StringSplitOptions.RemoveEmptyEntries);
        if (sources.Length == 0)
        {
            return HttpJson.WriteAsync(http, 400, HttpJson.EventSourceRequired);
        }

        if (!core.Sockets.IsKnown(app))
        {
            return HttpJson.WriteAsync(http, 404, HttpJson.ApplicationNotFound);
        }

        // Resolve every source first so a bad one subscribes nothing.
        var channels = new List<SimChannel>(sources.Length);
        foreach (var source in sources)
        {
            if (!source.StartsWith("channel:", StringComparison.Ordinal))
            {
                return HttpJson.WriteAsync(http, 400, HttpJson.EventSourceInvalid);
            }

            if (core.FindLive(source["channel:".Length..]) is not { } ch)
            {
                return HttpJson.WriteAsync(http, 422, HttpJson.EventSourceMissing);
            }

            channels.Add(ch);
        }

        foreach (var ch in channels)
        {
            if (!subscribe)
            {
                ch.Unsubscribe(app);
            }
            else if (!ch.Subscribe(app))
            {
                return HttpJson.WriteAsync(http, 422, HttpJson.EventSourceMissing);
            }
        }

        return GetApplication(http, app);
    }

    private Task GetApplication(HttpContext http, string app) =>
        core.Sockets.IsKnown(app)
            ? HttpJson.WriteAsync(http, 200, AriJson.Application(app, core.Subscriptions.ChannelIds(app)))
            : HttpJson.WriteAsync(http, 404, HttpJson.ApplicationNotFound);

    private static Task Answer(HttpContext http, ChannelOpResult? result) => result switch
    {
        ChannelOpResult.Ok => HttpJson.NoContent(http),
        ChannelOpResult.NotInStasis => HttpJson.WriteAsync(http, 409, HttpJson.NotInStasis),
        _ => HttpJson.WriteAsync(http, 404, HttpJson.ChannelNotFound),
    };
}
