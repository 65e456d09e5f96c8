using System.Globalization;
using CallRouter.Messages;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace CallRouter.Status;

/// <summary>Turns a snapshot into the operator's screen: adapters and routers, apps, the broker's queues, recent calls.</summary>
public static class StatusView
{
    private const string Router = "callrouter_router_";
    private const string Adapter = "callrouter_adapter_";

    public static IRenderable Render(Snapshot s, StatusOptions options)
    {
        var adapters = s.Adapters.Where(a => a.Samples is not null).ToList();
        var routers = s.Routers.Where(r => r.Samples is not null).ToList();
        var openBroadcasts = adapters.Sum(a => Value(a.Samples!, Adapter + "open_broadcasts"));
        var header = new Markup(
            $"[bold]Call router status[/]  {s.At:yyyy-MM-dd HH:mm:ss}  " +
            $"open broadcasts: [bold]{openBroadcasts:0}[/]  " +
            $"routers up: {routers.Count}/{s.Routers.Count}  adapters up: {adapters.Count}/{s.Adapters.Count}  " +
            $"vhost: {Esc(options.VirtualHost)}");
        return new Rows(header, AdapterTable(s), RouterTable(s), AppTable(s), BrokerTable(s, options), RecentCalls(s));
    }

    private static Table AdapterTable(Snapshot s)
    {
        var table = Titled("Adapters (one per Asterisk)", "endpoint", "node", "ARI", "broker", "open", "broadcasts", "failed", "decided", "latency p50 / p99 (claimed)", "live apps");
        foreach (var reading in s.Adapters)
        {
            if (reading.Samples is not { } m)
            {
                table.AddRow(Esc(reading.Url.ToString()), "", "", "", "", "", "", "", "", $"[red]{Esc(reading.Error!)}[/]");
                continue;
            }
            var node = m.FirstOrDefault(x => x.Name == Adapter + "info")?.Label("node") ?? "?";
            var failed = m.Where(x => x.Name == Adapter + "failed_total").GroupBy(x => x.Label("reason"))
                .Select(g => $"{g.Key}={g.Sum(x => x.Value):0}");
            var live = m.Where(x => x.Name == Adapter + "live_apps" && x.Value > 0).Select(x => x.Label("app")).Order();
            var claimed = m.Where(x => x.Name == Adapter + "decision_latency_seconds_bucket" && x.Label("status") == CallStatus.Success).ToList();
            table.AddRow(
                Esc(reading.Url.ToString()),
                $"[bold]{Esc(node)}[/]",
                UpDown(Value(m, Adapter + "ari_connected")),
                UpDown(Value(m, Adapter + "broker_connected")),
                Value(m, Adapter + "open_broadcasts").ToString("0", CultureInfo.InvariantCulture),
                Value(m, Adapter + "broadcasts_total").ToString("0", CultureInfo.InvariantCulture),
                Esc(string.Join(' ', failed)),
                Value(m, Adapter + "decision_latency_seconds_count").ToString("0", CultureInfo.InvariantCulture),
                $"{Ms(Quantile(claimed, 0.5))} / {Ms(Quantile(claimed, 0.99))}",
                Esc(string.Join(", ", live)));
        }
        return table;
    }

    private static Table RouterTable(Snapshot s)
    {
        var table = Titled("Routers", "endpoint", "SUCCESS", "TIMEOUT", "claims", "rejected claims", "adapter-reported endings");
        foreach (var reading in s.Routers)
        {
            if (reading.Samples is not { } m)
            {
                table.AddRow(Esc(reading.Url.ToString()), "", "", "", "", $"[red]{Esc(reading.Error!)}[/]");
                continue;
            }
            var decisions = m.Where(x => x.Name == Router + "decisions_total").ToList();
            var claims = m.Where(x => x.Name == Router + "claims_total").ToList();
            var rejected = claims.Where(x => x.Label("outcome") != "accepted").GroupBy(x => x.Label("outcome"))
                .Select(g => $"{g.Key}={g.Sum(x => x.Value):0}");
            var reported = m.Where(x => x.Name == Router + "reported_endings_total")
                .Select(x => $"{x.Label("status")}/{x.Label("reason")}={x.Value:0}");
            table.AddRow(
                Esc(reading.Url.ToString()),
                decisions.Where(x => x.Label("status") == CallStatus.Success).Sum(x => x.Value).ToString("0", CultureInfo.InvariantCulture),
                decisions.Where(x => x.Label("status") == CallStatus.Timeout).Sum(x => x.Value).ToString("0", CultureInfo.InvariantCulture),
                claims.Sum(x => x.Value).ToString("0", CultureInfo.InvariantCulture),
                Esc(string.Join(' ', rejected)),
                Esc(string.Join(' ', reported)));
        }
        return table;
    }

    private static Table AppTable(Snapshot s)
    {
        var adapterSamples = s.Adapters.Where(a => a.Samples is not null).ToList();
        var routerSamples = s.Routers.Where(r => r.Samples is not null).SelectMany(r => r.Samples!).ToList();
        var queues = (s.Queues ?? []).ToDictionary(q => q.Name);
        var apps = adapterSamples.SelectMany(a => a.Samples!).Where(x => x.Name == Adapter + "live_apps").Select(x => x.Label("app"))
            .Concat(routerSamples.Where(x => x.Name is Router + "wins_total" or Router + "timeouts_total").Select(x => x.Label("app")))
            .Where(a => a.Length > 0).Distinct().Order(StringComparer.Ordinal);

        var table = Titled("Apps", "app", "live on", "wins", "timeouts", "claims", "queue", "waiting", "consumers");
        foreach (var app in apps)
        {
            var liveOn = adapterSamples
                .Where(a => a.Samples!.Any(x => x.Name == Adapter + "live_apps" && x.Label("app") == app && x.Value > 0))
                .Select(a => a.Samples!.FirstOrDefault(x => x.Name == Adapter + "info")?.Label("node") ?? a.Url.ToString());
            double Sum(string name) => routerSamples.Where(x => x.Name == name && x.Label("app") == app).Sum(x => x.Value);
            var queueName = Topology.AppQueue(app);
            queues.TryGetValue(queueName, out var queue);
            table.AddRow(
                $"[bold]{Esc(app)}[/]",
                Esc(string.Join(", ", liveOn)) is { Length: > 0 } nodes ? nodes : "[yellow]not live[/]",
                Sum(Router + "wins_total").ToString("0", CultureInfo.InvariantCulture),
                Sum(Router + "timeouts_total").ToString("0", CultureInfo.InvariantCulture),
                Sum(Router + "claims_total").ToString("0", CultureInfo.InvariantCulture),
                Esc(queueName),
                queue?.Messages?.ToString(CultureInfo.InvariantCulture) ?? "-",
                queue?.Consumers?.ToString(CultureInfo.InvariantCulture) ?? "-");
        }
        return table;
    }

    private static Table BrokerTable(Snapshot s, StatusOptions options)
    {
        var table = Titled($"RabbitMQ {Esc(options.Management.Authority)} vhost {Esc(options.VirtualHost)}", "what", "queue", "waiting", "consumers");
        if (s.Queues is not { } queues)
        {
            table.AddRow("management API", "", "", $"[red]{Esc(s.QueuesError!)}[/]");
            return table;
        }
        var adapterPrefix = Topology.AdapterQueue("");
        var router = queues.FirstOrDefault(q => q.Name == Topology.RouterQueue);
        table.AddRow("routers connected", Topology.RouterQueue, Count(router?.Messages), Count(router?.Consumers));
        foreach (var queue in queues.Where(q => q.Name.StartsWith(adapterPrefix, StringComparison.Ordinal)
                     && !q.Name.EndsWith("_error", StringComparison.Ordinal) && !q.Name.Contains(".heartbeats.", StringComparison.Ordinal)))
        {
            var node = queue.Name[adapterPrefix.Length..];
            var connected = queue.Consumers > 0 ? $"adapter [bold]{Esc(node)}[/]" : $"[red]adapter {Esc(node)}: no consumer[/]";
            table.AddRow(connected, Esc(queue.Name), Count(queue.Messages), Count(queue.Consumers));
        }
        foreach (var queue in queues.Where(q => q.Name.EndsWith("_error", StringComparison.Ordinal)))
        {
            var depth = queue.Messages ?? 0;
            table.AddRow(depth > 0 ? "[red]error queue[/]" : "error queue", Esc(queue.Name),
                depth > 0 ? $"[red]{depth}[/]" : "0", Count(queue.Consumers));
        }
        return table;
    }

    private static Table RecentCalls(Snapshot s)
    {
        var table = Titled($"Recent decisions (CDR call_records, last {StatusReader.RecentCallCount})",
            "broadcast at", "node", "caller", "exten", "status", "reason", "winner", "claims", "decision ms", "claim ms");
        if (s.RecentCalls is not { } calls)
        {
            table.AddRow("CDR", "", "", "", "", "", "", "", "", $"[yellow]{Esc(s.RecentCallsError!)}[/]");
            return table;
        }
        foreach (var call in calls)
            table.AddRow(
                call.BroadcastAt?.ToLocalTime().ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture) ?? "",
                Esc(call.Node ?? ""), Esc(call.CallerNumber ?? ""), Esc(call.Extension ?? ""), Esc(call.Status ?? ""),
                Esc(call.Reason ?? ""), Esc(call.Winner ?? ""),
                call.Claims is { } claims ? $"{claims}/{call.AudienceSize}" : "",
                call.DecisionLatencyMs?.ToString("0.0", CultureInfo.InvariantCulture) ?? "",
                call.ClaimLatencyMs?.ToString("0.0", CultureInfo.InvariantCulture) ?? "");
        return table;
    }

    /// <summary>A quantile estimated from cumulative buckets, interpolated within the bucket it falls in (as PromQL's histogram_quantile).</summary>
    public static double? Quantile(IReadOnlyList<Sample> buckets, double q)
    {
        var points = buckets
            .Select(b => (Le: b.Label("le") == "+Inf" ? double.PositiveInfinity : double.Parse(b.Label("le"), CultureInfo.InvariantCulture), b.Value))
            .OrderBy(p => p.Le).ToList();
        if (points.Count == 0 || points[^1].Value == 0)
            return null;
        var rank = q * points[^1].Value;
        double lower = 0, below = 0;
        foreach (var (le, cumulative) in points)
        {
            if (cumulative >= rank)
                return double.IsPositiveInfinity(le) ? lower : lower + (le - lower) * ((rank - below) / Math.Max(cumulative - below, 1e-12));
            (lower, below) = (le, cumulative);
        }
        return lower;
    }

    private static Table Titled(string title, params string[] columns)
    {
        var table = new Table { Title = new TableTitle(title, new Style(decoration: Decoration.Bold)), Border = TableBorder.Rounded };
        table.AddColumns(columns.Select(c => new TableColumn(c)).ToArray());
        return table;
    }

    private static double Value(IEnumerable<Sample> samples, string name) => samples.Where(x => x.Name == name).Sum(x => x.Value);

    private static string UpDown(double value) => value > 0 ? "[green]up[/]" : "[red]down[/]";

    private static string Count(long? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "-";

    private static string Count(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "-";

    private static string Ms(double? seconds) => seconds is { } s ? $"{s * 1000:0.0} ms" : "-";

    private static string Esc(string text) => Markup.Escape(text);
}
