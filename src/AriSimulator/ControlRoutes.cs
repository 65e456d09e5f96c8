using Microsoft.AspNetCore.Http;

namespace CallRouter.AriSimulator;

/// <summary>The call-control routes of ARI (channels/create, dial, answer, play, dtmf, playbacks, bridges); anything else is 404.</summary>
internal sealed class ControlRoutes(SimControl control)
{
    public Task HandleAsync(HttpContext http, string[] route)
    {
        var q = http.Request.Query;
        string Q(string name) => q[name].ToString();
        var outcome = (route, http.Request.Method) switch
        {
            (["channels", "create"], "POST") => control.Create(Q("endpoint"), Q("app"),
                Q("appArgs").Split(',', StringSplitOptions.RemoveEmptyEntries), Q("channelId")),
            (["channels", var id, "answer"], "POST") => control.Answer(id),
            (["channels", var id, "dial"], "POST") => control.Dial(id),
            (["channels", var id, "dtmf"], "POST") => control.SendDtmf(id, Q("dtmf")),
            (["channels", var id, "play"], "POST") => control.Play(onBridge: false, id, Q("media"), Q("playbackId")),
            (["playbacks", var id], "DELETE") => control.StopPlayback(id),
            (["bridges"], "POST") => control.CreateBridge(Q("type"), Q("name"), Q("bridgeId")),
            (["bridges"], "GET") => control.ListBridges(),
            (["bridges", var id], "GET") => control.GetBridge(id),
            (["bridges", var id], "DELETE") => control.DestroyBridge(id),
            (["bridges", var id, "addChannel"], "POST") => control.AddChannels(id, Q("channel")),
            (["bridges", var id, "removeChannel"], "POST") => control.RemoveChannel(id, Q("channel")),
            (["bridges", var id, "play"], "POST") => control.Play(onBridge: true, id, Q("media"), Q("playbackId")),
            _ => new Outcome(404, HttpJson.ResourceNotFound),
        };
        return outcome.Body is { } body ? HttpJson.WriteAsync(http, outcome.Status, body) : Status(http, outcome.Status);
    }

    private static Task Status(HttpContext http, int status)
    {
        http.Response.StatusCode = status;
        return Task.CompletedTask;
    }
}
