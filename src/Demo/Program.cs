using System.Diagnostics;
using CallRouter.AsteriskAdapter;
using CallRouter.Common;
using CallRouter.Demo;
using CallRouter.Messages;
using CallRouter.Router;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sim = CallRouter.AriSimulator;

// The demo: ARI simulator → adapter → RabbitMQ → router, with three apps racing for calls, shown live.
// Options: --rate N (calls/s, default 50), --seconds N (stop after N seconds; default: until Ctrl-C).
ThreadPool.SetMinThreads(64, 64);
var rate = ArgValue("--rate", 50);
var seconds = ArgValue("--seconds", 0);
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
if (seconds > 0)
    stop.CancelAfter(TimeSpan.FromSeconds(seconds));

var broker = new BrokerOptions();
await using var ari = await Sim.AriSimulator.StartAsync(new Sim.AriSimulatorOptions { HangupAfterHandover = TimeSpan.FromMilliseconds(200) });
var settings = new Dictionary<string, string?>
{
    ["Adapter:AriUrl"] = ari.BaseUrl.ToString(),
    ["Adapter:Node"] = "demo-asterisk",
    // The demo's apps all run as the one broker user; a real deployment gives each app its own (infra/add-app-user.sh).
    [$"{AppOwnership.Section}:{broker.User}"] = ".*",
};
using var router = Start(b => b.AddRouter());
using var adapter = Start(b => b.AddAsteriskAdapter());
await router.StartAsync();
await adapter.StartAsync();
await ari.WaitForAppAsync("call-router", TimeSpan.FromSeconds(15));

string[] racers = ["sales", "support", "billing"];
var apps = racers.Select(n => new ClaimantApp(broker, n)).Append(new ClaimantApp(broker, "observer") { AutoClaim = false }).ToList();
foreach (var app in apps)
    await app.Start();
await Task.Delay(1500);

Console.WriteLine($"Demo: {rate} calls/s into Stasis(call-router); apps {string.Join(", ", racers)} race; 1 call in 20 goes to 'observer' (never claims → TIMEOUT), 1 in 20 to a filter nobody matches (→ FAILED). Ctrl-C stops.");
Console.WriteLine("RabbitMQ console: http://localhost:15672 (guest/guest)");
var channels = new List<Sim.SimChannel>();
var started = Stopwatch.StartNew();
var report = Stopwatch.StartNew();
long n = 0;
while (!stop.IsCancellationRequested)
{
    var due = (long)(started.Elapsed.TotalSeconds * rate);
    for (; n < due; n++)
    {
        string[] stasisArgs = (n % 20) switch
        {
            7 => ["timeout=500", "filter=^observer$"],
            13 => ["timeout=500", "filter=^nobody$"],
            _ => ["timeout=1000", "filter=^(sales|support|billing)$"],
        };
        channels.Add(ari.Originate("call-router", stasisArgs, extension: (1000 + n % 100).ToString()));
    }
    if (report.ElapsedMilliseconds >= 1000)
    {
        report.Restart();
        Show(channels, apps, started.Elapsed);
    }
    try
    {
        await Task.Delay(5, stop.Token);
    }
    catch (OperationCanceledException)
    {
    }
}

await Task.WhenAny(Task.WhenAll(channels.Select(c => c.Handover)), Task.Delay(3000));
Console.WriteLine("Final:");
Show(channels, apps, started.Elapsed);
foreach (var app in apps)
    await app.DisposeAsync();
await adapter.StopAsync();
await router.StopAsync();
return 0;

IHost Start(Action<IHostApplicationBuilder> add)
{
    var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
    builder.Configuration.AddInMemoryCollection(settings).AddEnvironmentVariables();
    builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
    add(builder);
    return builder.Build();
}

static void Show(List<Sim.SimChannel> channels, List<ClaimantApp> apps, TimeSpan elapsed)
{
    var done = channels.Where(c => c.Handover.IsCompleted && c.HandoverTimestamp != 0).ToList();
    string Var(Sim.SimChannel c, string name) => c.Variables.TryGetValue(name, out var v) ? v : "";
    var byStatus = done.GroupBy(c => Var(c, "ROUTER_STATUS")).ToDictionary(g => g.Key, g => g.Count());
    var wins = done.Where(c => Var(c, "ROUTER_STATUS") == CallStatus.Success).GroupBy(c => Var(c, "ROUTER_WINNER")).OrderBy(g => g.Key)
        .Select(g => $"{g.Key}={g.Count()}");
    var won = done.Where(c => Var(c, "ROUTER_STATUS") == CallStatus.Success).ToList();
    var claimed = won.Select(c => Stopwatch.GetElapsedTime(c.StasisStartTimestamp, c.HandoverTimestamp).TotalMilliseconds).Order().ToList();
    // The last 10 s on their own: the cumulative figures keep the JIT's warm-up of the first seconds forever.
    var recent = won.Where(c => Stopwatch.GetElapsedTime(c.HandoverTimestamp) < TimeSpan.FromSeconds(10))
        .Select(c => Stopwatch.GetElapsedTime(c.StasisStartTimestamp, c.HandoverTimestamp).TotalMilliseconds).Order().ToList();
    static double Q(List<double> sorted, double q) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(sorted.Count * q) - 1)];
    var fallbacks = done.Count(c => Var(c, "ROUTER_REASON") == DispositionReason.RouterNoAnswer);
    Console.WriteLine($"[{elapsed:mm\\:ss}] offered {channels.Count}, decided {done.Count} | SUCCESS {byStatus.GetValueOrDefault("SUCCESS")} ({string.Join(" ", wins)}) " +
        $"TIMEOUT {byStatus.GetValueOrDefault("TIMEOUT")} FAILED {byStatus.GetValueOrDefault("FAILED")} fallbacks {fallbacks} | decision latency, last 10 s: p50 {Q(recent, 0.5):F2} ms p99 {Q(recent, 0.99):F2} ms " +
        $"(since start, warm-up included: p50 {Q(claimed, 0.5):F2} ms p99 {Q(claimed, 0.99):F2} ms)");
}

int ArgValue(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) ? v : fallback;
}
