using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using CallRouter.Benchmark;
using CallRouter.Common;
using CallRouter.Demo;
using CallRouter.Messages;
using Sim = CallRouter.AriSimulator;

// The benchmark: the whole system (ARI simulator over HTTP/WebSocket → adapter process → RabbitMQ → router process),
// K racing apps, at a fixed rate and in saturation, against the broker's raw 3-hop floor. See README "Benchmark".
ThreadPool.SetMinThreads(64, 64);
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
// Options that take a value, and flags. Anything else stops the run before it starts (or appends a table) with usage.
string[] valueOptions = ["--fixed-only", "--router", "--adapter", "--apps", "--rate", "--seconds", "--in-flight", "--saturation-seconds",
    "--open", "--open-rate", "--out", "--sagas", "--routers", "--controlled-rate", "--controlled-seconds", "--cluster",
    "--cluster-management-port", "--kill-leader-after", "--soak-seconds", "--overload-seconds", "--overload-rate", "--ladder-seconds",
    "--ladder-step"];
string[] flags = ["--cluster-compare", "--keep-cluster"];
for (var i = 0; i < args.Length; i++)
{
    if (flags.Contains(args[i]))
        continue;
    if (valueOptions.Contains(args[i]) && i + 1 < args.Length)
    {
        i++;
        continue;
    }
    var help = args[i] is "--help" or "-h";
    if (!help)
        Console.Error.WriteLine($"unknown option or missing value: {args[i]}");
    Console.Error.WriteLine("usage: ./bench.sh [--OPTION VALUE]... [--cluster-compare [--keep-cluster]]; README, \"Benchmark\", says what each does.");
    Console.Error.WriteLine($"options: {string.Join(" ", valueOptions)}");
    return help ? 0 : 2;
}
// One node against the cluster, the same fixed-rate run in the same invocation (issue 13): this process runs twice more.
if (args.Contains("--cluster-compare"))
    return await ClusterCompare.Run(args);
// A child of --cluster-compare: only the warm-up and the fixed-rate run, its figures written to this file as JSON.
var fixedOnly = Arg("--fixed-only", "");
var routerDll = Arg("--router", "src/Router/bin/Release/net10.0/CallRouter.Router.dll");
var adapterDll = Arg("--adapter", "src/AsteriskAdapter/bin/Release/net10.0/CallRouter.AsteriskAdapter.dll");
var appCount = int.Parse(Arg("--apps", "3"));
var rate = int.Parse(Arg("--rate", "300"));
var seconds = int.Parse(Arg("--seconds", "20"));
var inFlight = int.Parse(Arg("--in-flight", "64"));
var saturationSeconds = int.Parse(Arg("--saturation-seconds", "10"));
var openCalls = int.Parse(Arg("--open", "10000"));
var openRate = int.Parse(Arg("--open-rate", "500"));
var output = Arg("--out", "docs/benchmarks.md");
var sagas = Arg("--sagas", "memory");
var routerCount = int.Parse(Arg("--routers", "1"));
var controlledRate = int.Parse(Arg("--controlled-rate", "100"));
var controlledSeconds = int.Parse(Arg("--controlled-seconds", "10"));
// A cluster (infra/cluster.sh): its nodes "host:port,..." and their management port; its queues are quorum queues.
var clusterNodes = Arg("--cluster", "");
if (clusterNodes != "")
{
    Environment.SetEnvironmentVariable("RABBITMQ_HOSTS", clusterNodes);
    Environment.SetEnvironmentVariable("RABBITMQ_QUEUE_TYPE", BrokerOptions.QuorumQueues);
    Environment.SetEnvironmentVariable("RABBITMQ_MANAGEMENT_PORT", Arg("--cluster-management-port", "15681"));
}
// --cluster-compare --kill-leader-after S: S s into the cluster's fixed-rate run, the node leading the router queue is killed.
var killLeaderAfter = int.Parse(Arg("--kill-leader-after", "0"));
var soakSeconds = int.Parse(Arg("--soak-seconds", "0"));
var overloadSeconds = int.Parse(Arg("--overload-seconds", "10"));
var fixedOverloadRate = int.Parse(Arg("--overload-rate", "0"));
// The clean-rate ladder (issue 12): fixed rates from --ladder-step up in steps of it, --ladder-seconds each (0 skips it).
var ladderSeconds = int.Parse(Arg("--ladder-seconds", "5"));
var ladderStep = int.Parse(Arg("--ladder-step", "100"));
// A clean decision p99: a tenth of the default 500 ms claim timeout, far from the fallback.
const double CleanP99Ms = 50;
if (sagas is not ("memory" or "postgres") || routerCount < 1 || (sagas == "memory" && routerCount > 1))
    throw new ArgumentException("--sagas memory|postgres; several --routers need --sagas postgres");

var loadBefore = File.ReadAllText("/proc/loadavg").Split(' ')[0];
var broker = new BrokerOptions();
(broker.Host, broker.Port) = broker.Nodes()[0];
broker = await FreshVirtualHost(broker);
await using var ari = await Sim.AriSimulator.StartAsync(new Sim.AriSimulatorOptions { HangupAfterHandover = TimeSpan.FromMilliseconds(50) });
var environment = new Dictionary<string, string>
{
    ["Broker__Host"] = broker.Host, ["Broker__Port"] = broker.Port.ToString(), ["Broker__VirtualHost"] = broker.VirtualHost,
    ["Broker__User"] = broker.User, ["Broker__Password"] = broker.Password,
    ["Broker__Hosts"] = broker.Hosts, ["Broker__QueueType"] = broker.QueueType,
    ["Adapter__AriUrl"] = ari.BaseUrl.ToString(), ["Adapter__Node"] = "bench", ["Http__Urls"] = "http://127.0.0.1:0",
    ["Postgres__WriteCdrs"] = "false",
    // The racing apps share the benchmark's broker user, which so owns every app name.
    [$"Router__AppOwners__{broker.User}"] = ".*",
};
var database = sagas == "postgres" ? await BenchDatabase.Create() : null;
if (database is not null)
{
    // PostgreSQL mode as deployed: saga state and durable timers shared by the routers, and CDRs written.
    environment["Router__SagaRepository"] = "Postgres";
    environment["Postgres__ConnectionString"] = database.ConnectionString;
    environment["Postgres__WriteCdrs"] = "true";
}
await using var routers = new ChildProcesses();
for (var i = 0; i < routerCount; i++)
    routers.Add(ChildProcess.Start($"router-{i + 1}", routerDll, environment));
var router = routers[0];
await using var adapter = ChildProcess.Start("adapter", adapterDll, environment);
await ari.WaitForAppAsync("call-router", TimeSpan.FromSeconds(30));
const string OpenApp = "call-router-open";
// The open broadcasts wait out a 60 s timeout unclaimed: they get an adapter (and Stasis app) of their own, sized for
// them as README "Overload" says (Adapter__MaxOpenCalls off), so the default cap of the measured adapter stays as shipped.
await using var openAdapter = ChildProcess.Start("adapter-open", adapterDll, new Dictionary<string, string>(environment)
{
    ["Adapter__App"] = OpenApp, ["Adapter__Node"] = "bench-open", ["Adapter__MaxOpenCalls"] = "0",
});
await ari.WaitForAppAsync(OpenApp, TimeSpan.FromSeconds(30));

// Pipelined: an app that waits for each answer in its broadcast handler caps what the benchmark can show (README, step 4).
var racers = Enumerable.Range(1, appCount).Select(i => new ClaimantApp(broker, $"racer-{i}") { PipelineClaims = true }).ToList();
var observer = new ClaimantApp(broker, "observer") { AutoClaim = false };
foreach (var app in racers.Append(observer))
{
    // Apps only check that the shared exchanges exist (an app user may not declare them): the router makes them as it starts.
    for (var attempt = 1; ; attempt++)
    {
        try
        {
            await app.Start();
            break;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException) when (attempt < 60)
        {
            await Task.Delay(500);
        }
    }
}
var raceFilter = $"filter=^({string.Join('|', racers.Select(a => a.Name))})$";
await WaitUntilRouted();

Console.WriteLine("warm-up: 1,000 calls at 200/s");
await Offer(200, 1000, _ => ["timeout=2000", raceFilter]);
var warmUp = await WarmUntilSteady();
Console.WriteLine($"warm-up: steady after {warmUp.Calls:N0} more calls ({warmUp.Seconds:F0} s); tier-up compilation since start: router {warmUp.RouterTierUpSeconds:F1} s, adapter {warmUp.AdapterTierUpSeconds:F1} s of CPU");
var brokerPid = clusterNodes == "" ? ProcessCpu.LocalBroker() : null;

if (fixedOnly != "")
{
    Console.WriteLine($"fixed rate: {rate} calls/s for {seconds} s, {appCount} apps racing");
    var kill = killLeaderAfter > 0 && clusterNodes != "" ? KillRouterQueueLeader(TimeSpan.FromSeconds(killLeaderAfter)) : Task.FromResult<long?>(null);
    var only = await Cost(rate, seconds);
    var onlyLatency = Latencies(only.Run, CallStatus.Success);
    double onlyCalls = only.Run.Count;
    // Decisions stopped: from the kill to the last call (offered from 5 s before it) that was not won; then the calls not won.
    double? stopped = null;
    int? notWon = null;
    if (await kill is { } killedAt)
    {
        var hit = only.Run.Where(c => c.StasisStartTimestamp > killedAt - 5 * Stopwatch.Frequency && Var(c, "ROUTER_STATUS") != CallStatus.Success).ToList();
        notWon = hit.Count;
        stopped = hit.Count == 0 ? 0 : Math.Max(0, Stopwatch.GetElapsedTime(killedAt, hit.Max(c => c.StasisStartTimestamp)).TotalSeconds);
    }
    await File.WriteAllTextAsync(fixedOnly, System.Text.Json.JsonSerializer.Serialize(new ClusterCompare.FixedRun(
        rate, only.Run.Count, Achieved(only.Run), P(onlyLatency, .5), P(onlyLatency, .99), Count(only.Run, CallStatus.Success), Count(only.Run, CallStatus.Timeout),
        only.Broker.Published / onlyCalls, only.Broker.Delivered / onlyCalls, only.Broker.BytesIn / onlyCalls / 1024, only.Broker.BytesOut / onlyCalls / 1024,
        only.RouterCpuSeconds * 1000 / onlyCalls, only.AdapterCpuSeconds * 1000 / onlyCalls, stopped, notWon, double.IsNaN(only.BrokerCpuSeconds) ? null : only.BrokerCpuSeconds * 1000 / onlyCalls)));
    await CleanUp();
    return 0;
}

if (soakSeconds > 0)
{
    var flat = await Soak(soakSeconds);
    await CleanUp();
    return flat ? 0 : 1;
}

// First after the warm-up, so the thousands of calls the other runs keep in this process do not weigh on its latencies.
ControlledRun.Result? controlled = null;
if (controlledRate > 0)
{
    Console.WriteLine($"controlled calls: bridge-dial over the bus at {controlledRate} calls/s for {controlledSeconds} s");
    await using var dialer = new ControlledRun(broker, ari);
    controlled = await dialer.Measure(controlledRate, controlledSeconds);
}

var sample = Wire.Serialize(racers[0].Broadcasts.First());
Console.WriteLine($"raw floor: 3-hop relay of {sample.Length}-byte messages at {rate}/s");
var floor = await RawFloor.Measure(broker, sample.Length, rate, rate * Math.Min(seconds, 10));

// Cost per routed call at a low and at the fixed rate (issue 12): every process's CPU, the broker's messages and bytes,
// and the ARI requests, counted from the first call until the last timer of the last call has fired.
var costs = new List<CallCost>();
foreach (var costRate in new[] { 100, rate }.Distinct())
{
    Console.WriteLine($"fixed rate: {costRate} calls/s for {seconds} s, {appCount} apps racing");
    costs.Add(await Cost(costRate, seconds));
}
var fixedCost = costs[^1];
var (fixedRun, fixedCpu) = (fixedCost.Run, fixedCost.Cpu);

Console.WriteLine($"timeouts: {rate} calls/s for 5 s that nobody claims (timeout 500 ms)");
var timeoutRun = await Offer(rate, rate * 5, _ => ["timeout=500", "filter=^observer$"]);

Console.WriteLine($"saturation: {inFlight} calls in flight for {saturationSeconds} s");
var (saturationRun, saturationCpu) = await Measured(() => Saturate(inFlight, TimeSpan.FromSeconds(saturationSeconds), ["timeout=5000", raceFilter]));

// The best clean rate: the highest fixed rate at which every call is won and decided well inside its timeout. The
// saturation run finds the most the box routes with calls queueing; this finds what it routes without them queueing.
var ladder = new List<(int Rate, int Offered, int Won, double P99)>();
for (var step = ladderStep; ladderSeconds > 0 && step <= 2 * Math.Max(rate, Achieved(saturationRun)); step += ladderStep)
{
    Console.WriteLine($"clean-rate ladder: {step} calls/s for {ladderSeconds} s");
    var run = await Offer(step, step * ladderSeconds, _ => ["timeout=2000", raceFilter]);
    ladder.Add((step, run.Count, Count(run, CallStatus.Success), P(Latencies(run, CallStatus.Success), .99)));
    if (!Clean(ladder[^1]))
        break;
}
var bestClean = ladder.Where(Clean).Select(l => l.Rate).DefaultIfEmpty(0).Max();

Console.WriteLine($"open broadcasts: {openCalls:N0} calls left open (timeout 60 s), after the router forgot the decided ones");
await Task.Delay(TimeSpan.FromSeconds(12)); // FinishedRetention (10 s): only the open broadcasts remain in the saga repository
var routerRssIdle = router.RssMb();
// Offered below the saturation rate, so admission control does not shed any: the figure is for calls the router holds.
var open = await Offer(openRate, openCalls, _ => ["timeout=60000", "filter=^observer$"], wait: false, app: OpenApp);
await Task.Delay(TimeSpan.FromSeconds(5));
var routerRssOpen = router.RssMb();
var heldOpen = open.Count(c => !c.Handover.IsCompleted);
foreach (var channel in open)
    await ari.HangupAsync(channel.Id);

// Open loop at twice the saturation rate: goodput, and how fast the calls that cannot be served leave Stasis. Last, so
// the memory it leaves behind does not count in the RSS figures above.
// --overload-rate fixes the offered rate (for A/B runs: twice a saturation measured over seconds varies run to run).
var overloadRate = fixedOverloadRate > 0 ? fixedOverloadRate : (int)Math.Round(Achieved(saturationRun) * 2, MidpointRounding.AwayFromZero);
// After it, the load the box routes cleanly (the ladder's best clean rate; --rate without a ladder): is the next second clean again?
var afterRate = bestClean > 0 ? bestClean : rate;
// --overload-seconds 0 skips it (and its line in the report).
if (overloadSeconds > 0)
    Console.WriteLine($"overload: {overloadRate} calls/s for {overloadSeconds} s ({(fixedOverloadRate > 0 ? "--overload-rate" : "twice the saturation rate")}), then {afterRate} calls/s for 3 s");
// Where the box's two cores go while it is overloaded: the calls shed cost ARI work too (README "Overload").
var (overloadCpu0, overloadClock) = (CpuNow(), Stopwatch.StartNew());
var overloadRun = overloadSeconds > 0 ? await Offer(overloadRate, overloadRate * overloadSeconds, _ => ["timeout=2000", raceFilter], wait: false) : [];
var overloadCpu = (CpuNow() - overloadCpu0) / overloadClock.Elapsed.TotalSeconds;
var afterOverload = overloadSeconds > 0 ? await Offer(afterRate, afterRate * 3, _ => ["timeout=2000", raceFilter], wait: false) : [];
// Past capacity some calls may never leave: the run reports them rather than stopping here.
await Task.WhenAny(Task.WhenAll(overloadRun.Concat(afterOverload).Select(c => c.Handover)), Task.Delay(TimeSpan.FromSeconds(60)));
var stranded = overloadRun.Concat(afterOverload).Count(c => !c.Handover.IsCompleted);
overloadRun = [.. overloadRun.Where(c => c.Handover.IsCompleted)];
afterOverload = [.. afterOverload.Where(c => c.Handover.IsCompleted)];

var replies = racers.SelectMany(a => a.Replies).ToList();
var doubleWins = replies.Where(r => r.Accepted).GroupBy(r => r.CallId).Count(g => g.Count() > 1);
var report = Report();
Console.WriteLine(report);
Directory.CreateDirectory(Path.GetDirectoryName(output)!);
if (!File.Exists(output))
    await File.WriteAllTextAsync(output, "# Benchmarks\n\nAppended by the benchmark command (README, \"Benchmark\"). Everything runs on one machine.\n");
await File.AppendAllTextAsync(output, report);
var cdrRows = database is null ? null : $" CDR rows written: {await database.CountRecords():N0}.";
await CleanUp();
if (cdrRows is not null)
    Console.WriteLine(cdrRows);
return doubleWins == 0 ? 0 : 1;

// The apps, the routers, the run's virtual host and database: what every way out of the run leaves behind.
async Task CleanUp()
{
    foreach (var app in racers.Append(observer))
        await app.DisposeAsync();
    await routers.DisposeAsync();
    await DeleteVirtualHost(broker);
    if (database is not null)
        await database.DisposeAsync();
}

string Report()
{
    var fixedLatency = Latencies(fixedRun, CallStatus.Success);
    var saturationLatency = Latencies(saturationRun, CallStatus.Success);
    var lateness = timeoutRun.Where(c => c.HandoverTimestamp != 0)
        .Select(c => Stopwatch.GetElapsedTime(c.StasisStartTimestamp, c.HandoverTimestamp).TotalMilliseconds - 500).Order().ToList();
    var achieved = Achieved(saturationRun);
    var loadAfter = File.ReadAllText("/proc/loadavg").Split(' ')[0];
    var cpuModel = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':')[1].Trim() ?? "?";
    var b = new StringBuilder();
    b.AppendLine().AppendLine($"## {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC").AppendLine();
    b.AppendLine($"Machine: {Environment.ProcessorCount} cores ({cpuModel}), {GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1 << 30)} GiB; 1-minute load average {loadBefore} before, {loadAfter} after; RabbitMQ, router, adapter, simulator and apps all on this box.");
    b.AppendLine($"Command: `./bench.sh {string.Join(' ', args.Where(a => !a.EndsWith(".dll")))}`; broker: {(clusterNodes == "" ? "one node, classic queues" : $"three-node cluster ({clusterNodes}), quorum queues")}; {(database is null ? "in-memory saga, one router, no CDRs" : $"saga state in PostgreSQL, {routerCount} router process(es), CDRs written")}; {appCount} racing apps.").AppendLine();
    b.AppendLine("| run | offered | calls/s achieved | p50 ms | p90 ms | p99 ms | max ms | p50 / floor p50 | timeouts | double wins | router CPU | adapter CPU |");
    b.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
    b.AppendLine($"| raw 3-hop floor ({sample.Length} B) | {rate}/s | {rate} | {P(floor, .5):F2} | {P(floor, .9):F2} | {P(floor, .99):F2} | {Max(floor):F2} | 1.0 | – | – | – | – |");
    b.AppendLine($"| fixed rate | {rate}/s | {Achieved(fixedRun):F0} | {P(fixedLatency, .5):F2} | {P(fixedLatency, .9):F2} | {P(fixedLatency, .99):F2} | {Max(fixedLatency):F2} | {P(fixedLatency, .5) / P(floor, .5):F1} | {Count(fixedRun, CallStatus.Timeout)} | {doubleWins} | {fixedCpu.Router:P0} | {fixedCpu.Adapter:P0} |");
    b.AppendLine($"| saturation | {inFlight} in flight | {achieved:F0} | {P(saturationLatency, .5):F2} | {P(saturationLatency, .9):F2} | {P(saturationLatency, .99):F2} | {Max(saturationLatency):F2} | {P(saturationLatency, .5) / P(floor, .5):F1} | {Count(saturationRun, CallStatus.Timeout)} | {doubleWins} | {saturationCpu.Router:P0} | {saturationCpu.Adapter:P0} |");
    b.AppendLine().AppendLine($"- Timeout fallback lateness at {rate}/s ({lateness.Count} calls, 500 ms timeout, from StasisStart): p50 {P(lateness, .5):F1} ms, p99 {P(lateness, .99):F1} ms, max {Max(lateness):F1} ms; all TIMEOUT by the router: {timeoutRun.All(c => Var(c, "ROUTER_REASON") == DispositionReason.NoClaim)}.");
    var shedOpen = openCalls - heldOpen;
    b.AppendLine($"- Router RSS with {heldOpen:N0} open broadcasts (offered at {openRate}/s{(shedOpen > 0 ? $"; {shedOpen:N0} more were shed or ended" : "")}): {routerRssOpen.Now:F0} MB ({routerRssIdle.Now:F0} MB just before them; peak over the whole run {router.RssMb().Peak:F0} MB); adapter peak RSS {adapter.RssMb().Peak:F0} MB.");
    b.AppendLine($"- Where the fixed-rate p50 goes (winning app's clock, same process as the simulator): {Breakdown(fixedRun)}.");
    if (controlled is { } c)
        b.AppendLine($"- Controlled calls (bridge-dial over the bus, 8 commands per call) at {controlledRate}/s for {controlledSeconds} s: {c.Completed:N0} of {c.Offered:N0} completed, {c.CallsPerSecond:F0} calls/s; command round trip (app → adapter → ARI → reply, {c.RoundTripsMs.Count:N0} commands) p50 {P(c.RoundTripsMs, .5):F2} ms, p99 {P(c.RoundTripsMs, .99):F2} ms, max {(c.RoundTripsMs.Count > 0 ? c.RoundTripsMs[^1] : double.NaN):F2} ms; {c.Failures} failed flows; left on the Asterisk afterwards: {c.LeftChannels} channels, {c.LeftBridges} bridges.");
    if (ladder.Count > 0)
        b.AppendLine($"- Clean-rate ladder ({ladderSeconds} s per rate; clean = every call won and decision p99 at most {CleanP99Ms} ms, a tenth of the default claim timeout): " +
            string.Join(", ", ladder.Select(l => $"{l.Rate}/s {(Clean(l) ? "clean" : "not clean")}, {l.Won:N0} of {l.Offered:N0} won, p99 {l.P99:F1} ms")) +
            $"; best clean rate {(bestClean > 0 ? $"{bestClean}/s" : "none")}.");
    if (overloadSeconds > 0)
        b.AppendLine(Overload());
    b.AppendLine().AppendLine($"Cost per routed call ({appCount} racing apps; steady state: measured after {warmUp.Calls + 1000:N0} warm-up calls over {warmUp.Seconds + 5:F0} s, once the runtime's tier-up compilation had gone quiet, which took router {warmUp.RouterTierUpSeconds:F1} s and adapter {warmUp.AdapterTierUpSeconds:F1} s of CPU since start; " +
        $"CPU from the first call until the last call's timers have fired; broker: management API, whole virtual host, {(clusterNodes == "" ? "one node" : "all nodes, client traffic only")}; broker CPU: the local RabbitMQ process, all its virtual hosts; simulator + apps: this benchmark process, which stands in for Asterisk and runs the racing apps):").AppendLine();
    b.AppendLine("| offered | calls | p50 / p99 ms | router CPU ms | adapter CPU ms | router + adapter ms | broker CPU ms | simulator + apps CPU ms | published | delivered | KiB in | KiB out | ARI requests |");
    b.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    foreach (var cost in costs)
    {
        var latency = Latencies(cost.Run, CallStatus.Success);
        double calls = cost.Run.Count;
        b.AppendLine($"| {cost.Rate}/s | {calls:N0} | {P(latency, .5):F2} / {P(latency, .99):F2} | {cost.RouterCpuSeconds * 1000 / calls:F2} | {cost.AdapterCpuSeconds * 1000 / calls:F2} | " +
            $"{(cost.RouterCpuSeconds + cost.AdapterCpuSeconds) * 1000 / calls:F2} | {(double.IsNaN(cost.BrokerCpuSeconds) ? "–" : $"{cost.BrokerCpuSeconds * 1000 / calls:F2}")} | {cost.BenchmarkCpuSeconds * 1000 / calls:F2} | {cost.Broker.Published / calls:F1} | {cost.Broker.Delivered / calls:F1} | " +
            $"{cost.Broker.BytesIn / calls / 1024:F1} | {cost.Broker.BytesOut / calls / 1024:F1} | {cost.AriRequests / calls:F1} |");
    }
    b.AppendLine();
    b.AppendLine($"- Decision latency = StasisStart written on the WebSocket → continue executed on the channel (simulator clock). CPU = share of one core over the run.");
    return b.ToString();
}

// The overload run: goodput against the best clean rate (the ladder's) and the saturation rate, what the calls not routed were told and how long
// they stayed in Stasis, and whether the first second after the overload is clean again.
string Overload()
{
    var won = overloadRun.Where(c => Var(c, "ROUTER_STATUS") == CallStatus.Success).ToList();
    var goodput = won.Count / (double)overloadSeconds;
    var best = Achieved(saturationRun);
    var notRouted = overloadRun.Except(won).ToList();
    var stay = notRouted.Select(c => Stopwatch.GetElapsedTime(c.StasisStartTimestamp, c.HandoverTimestamp).TotalMilliseconds).Order().ToList();
    var outcomes = string.Join(", ", notRouted.GroupBy(c => $"{Var(c, "ROUTER_STATUS")}/{Var(c, "ROUTER_REASON")}").OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count():N0}"));
    var firstSecond = afterOverload.Take(afterRate).ToList();
    var firstLatency = Latencies(firstSecond, CallStatus.Success);
    var firstClean = Clean((afterRate, firstSecond.Count, Count(firstSecond, CallStatus.Success), P(firstLatency, .99)));
    return $"- Overload (open loop, {overloadRate}/s = {(fixedOverloadRate > 0 ? $"{overloadRate / best:F1} times" : "twice")} the saturation rate, for {overloadSeconds} s, timeout 2 s): goodput {goodput:F0} calls/s routed = " +
        $"{(bestClean > 0 ? $"{goodput / bestClean:P0} of the best clean rate ({bestClean}/s), " : "")}{goodput / best:P0} of the saturation rate ({best:F0}/s); " +
        $"won p50 / p99 {P(Latencies(overloadRun, CallStatus.Success), .5):F0} / {P(Latencies(overloadRun, CallStatus.Success), .99):F0} ms ({Breakdown(won)}); " +
        $"not routed {notRouted.Count:N0} ({(notRouted.Count == 0 ? "none" : outcomes)}), in Stasis p50 / p99 {P(stay, .5):F0} / {P(stay, .99):F0} ms; " +
        $"the first second after it at {afterRate}/s ({(bestClean > 0 ? "the best clean rate" : "--rate, no ladder")}): {Count(firstSecond, CallStatus.Success)} of {firstSecond.Count} routed, " +
        $"p99 {P(firstLatency, .99):F1} ms, {(firstClean ? "clean" : "not clean")}; " +
        $"still in Stasis 60 s later: {stranded}. CPU while it was offered (% of one core; the box has {Environment.ProcessorCount * 100} %): router {overloadCpu.Router:P0}, adapter {overloadCpu.Adapter:P0}, " +
        $"broker {(double.IsNaN(overloadCpu.Broker) ? "–" : $"{overloadCpu.Broker:P0}")}, simulator + apps {overloadCpu.Benchmark:P0}.";
}

// One fixed-rate run with its cost: CPU and broker totals from the first call until the timers of the last call (its
// deadline, and the router forgetting it after Router__FinishedRetention, 10 s) have fired and the management API
// (which samples every 5 s) has seen it all.
async Task<CallCost> Cost(int perSecond, int forSeconds)
{
    // The management API adds up each channel's counts every 5 s (collect_statistics_interval): read sooner after the
    // warm-up or the raw floor, its totals would still miss some of their messages, and this run would count them.
    await Task.Delay(TimeSpan.FromSeconds(6));
    var (cpu0, broker0, ari0) = (CpuNow(), await BrokerTotals(broker), ari.RestRequestCount);
    var clock = Stopwatch.StartNew();
    var run = await Offer(perSecond, perSecond * forSeconds, _ => ["timeout=2000", raceFilter]);
    var (during, wall) = (CpuNow() - cpu0, clock.Elapsed.TotalSeconds);
    await Task.Delay(TimeSpan.FromSeconds(16));
    var broker1 = await BrokerTotals(broker);
    var cpu = CpuNow() - cpu0;
    return new CallCost(perSecond, run, (during.Router / wall, during.Adapter / wall), cpu.Router, cpu.Adapter,
        (broker1.Published - broker0.Published, broker1.Delivered - broker0.Delivered, broker1.BytesIn - broker0.BytesIn, broker1.BytesOut - broker0.BytesOut),
        ari.RestRequestCount - ari0, cpu.Broker, cpu.Benchmark);
}

// CPU seconds so far of the routers, the adapter, the local broker (NaN when it is not a process here) and this process.
CpuTotals CpuNow() => new(routers.Sum(r => r.CpuSeconds), adapter.CpuSeconds,
    brokerPid is { } pid ? ProcessCpu.CpuSeconds(pid) : double.NaN, ProcessCpu.CpuSeconds(Environment.ProcessId));

// After start the runtime compiles the hot methods again, optimised, on a background thread ("tiered compilation"); on
// this box the adapter spent up to 0.75 ms per call there for half a minute after the first warm-up (issue 12, perf by
// thread). That is paid once per process start, not per call: the cost runs begin once it is done. Calls at 200/s in
// 2 s steps until the router's and the adapter's tier-up threads used at most 1 % of a core in a step, after at least
// 12 s (the router forgets a call 10 s after its decision: that path runs too), at most 90 s.
async Task<(int Calls, double Seconds, double RouterTierUpSeconds, double AdapterTierUpSeconds)> WarmUntilSteady()
{
    double TierUp() => routers.Sum(r => r.TierUpCpuSeconds) + adapter.TierUpCpuSeconds;
    var clock = Stopwatch.StartNew();
    var calls = 0;
    while (clock.Elapsed < TimeSpan.FromSeconds(90))
    {
        var before = TierUp();
        var step = Stopwatch.StartNew();
        calls += (await Offer(200, 400, _ => ["timeout=2000", raceFilter])).Count;
        if (clock.Elapsed >= TimeSpan.FromSeconds(12) && TierUp() - before <= 0.01 * step.Elapsed.TotalSeconds)
            break;
    }
    return (calls, clock.Elapsed.TotalSeconds, routers.Sum(r => r.TierUpCpuSeconds), adapter.TierUpCpuSeconds);
}

// A steady rate for a long while, with timeouts spread over 2,000 distinct values and the router and adapter RSS sampled
// every 30 s: every in-memory table must have a bound or an expiry, so RSS stays flat (README, "Benchmark").
async Task<bool> Soak(int soakFor)
{
    Console.WriteLine($"soak: {rate} calls/s for {soakFor} s, {appCount} apps racing, timeouts 1000-2999 ms; RSS every 30 s");
    var samples = new List<(TimeSpan At, double Router, double Adapter)>();
    long offered = 0, won = 0, other = 0;
    var clock = Stopwatch.StartNew();
    var nextSample = TimeSpan.Zero;
    while (clock.Elapsed < TimeSpan.FromSeconds(soakFor))
    {
        if (clock.Elapsed >= nextSample)
        {
            samples.Add((clock.Elapsed, routers.Sum(r => r.RssMb().Now), adapter.RssMb().Now));
            Console.WriteLine($"  {clock.Elapsed.TotalSeconds,5:F0} s  router RSS {samples[^1].Router,6:F0} MB  adapter RSS {samples[^1].Adapter,6:F0} MB  offered {offered:N0}  won {Interlocked.Read(ref won):N0}  other {Interlocked.Read(ref other):N0}");
            nextSample += TimeSpan.FromSeconds(30);
        }
        var due = TimeSpan.FromSeconds((double)offered / rate);
        if (due - clock.Elapsed is var pause && pause > TimeSpan.FromMilliseconds(1))
            await Task.Delay(pause);
        var channel = ari.Originate("call-router", [$"timeout={1000 + offered % 2000}", raceFilter]);
        _ = channel.Handover.ContinueWith(t => Interlocked.Increment(ref Var(t.Result, "ROUTER_STATUS") == CallStatus.Success ? ref won : ref other),
            TaskContinuationOptions.OnlyOnRanToCompletion);
        offered++;
    }
    await Task.Delay(TimeSpan.FromSeconds(5));
    samples.Add((clock.Elapsed, routers.Sum(r => r.RssMb().Now), adapter.RssMb().Now));
    var (first, last) = (samples.Count > 2 ? samples[1] : samples[0], samples[^1]); // the first 30 s include the JIT's growth
    Console.WriteLine($"soak: {offered:N0} calls offered, {won:N0} won, {other:N0} other; RSS at {first.At.TotalSeconds:F0} s vs {last.At.TotalSeconds:F0} s: " +
        $"router {first.Router:F0} → {last.Router:F0} MB, adapter {first.Adapter:F0} → {last.Adapter:F0} MB");
    return won + other == offered;
}

async Task<List<Sim.SimChannel>> Offer(int perSecond, int count, Func<int, string[]> stasisArgs, bool wait = true, string app = "call-router")
{
    var channels = new List<Sim.SimChannel>(count);
    var started = Stopwatch.StartNew();
    for (var i = 0; i < count; i++)
    {
        var due = TimeSpan.FromSeconds((double)i / perSecond);
        if (due - started.Elapsed is var pause && pause > TimeSpan.FromMilliseconds(1))
            await Task.Delay(pause);
        channels.Add(ari.Originate(app, stasisArgs(i)));
    }
    if (wait)
        await Task.WhenAll(channels.Select(c => c.Handover)).WaitAsync(TimeSpan.FromSeconds(90));
    return channels;
}

// Closed loop: a new call as soon as one is handed over, so the system runs at its own pace without a growing backlog.
async Task<List<Sim.SimChannel>> Saturate(int concurrency, TimeSpan duration, string[] stasisArgs)
{
    var channels = new System.Collections.Concurrent.ConcurrentQueue<Sim.SimChannel>();
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        while (clock.Elapsed < duration)
        {
            var channel = ari.Originate("call-router", stasisArgs);
            channels.Enqueue(channel);
            await channel.Handover.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }));
    return [.. channels];
}

async Task<(List<Sim.SimChannel> Run, (double Router, double Adapter) Cpu)> Measured(Func<Task<List<Sim.SimChannel>>> run)
{
    var (router0, adapter0, clock) = (routers.Sum(r => r.CpuSeconds), adapter.CpuSeconds, Stopwatch.StartNew());
    var channels = await run();
    var wall = clock.Elapsed.TotalSeconds;
    return (channels, ((routers.Sum(r => r.CpuSeconds) - router0) / wall, (adapter.CpuSeconds - adapter0) / wall));
}

async Task WaitUntilRouted()
{
    for (var attempt = 0; attempt < 100; attempt++)
    {
        var channel = ari.Originate("call-router", ["timeout=2000", raceFilter]);
        await channel.Handover.WaitAsync(TimeSpan.FromSeconds(10));
        if (Var(channel, "ROUTER_STATUS") == CallStatus.Success && racers.All(a => a.Broadcasts.Count > 0))
            return;
        await Task.Delay(200);
    }
    throw new TimeoutException("the router never decided a call");
}

// StasisStart → broadcast at the winner → its answer (claim read, saga) → continue executed (router → adapter → ARI).
string Breakdown(List<Sim.SimChannel> channels)
{
    // The adapter stamps BroadcastAt (UTC) as it publishes; the simulator's StasisStart is a Stopwatch timestamp, put on
    // the same clock through one pair of readings (same machine, so the two clocks agree to well under a millisecond).
    var (utcNow, stopwatchNow) = (DateTimeOffset.UtcNow, Stopwatch.GetTimestamp());
    var broadcasts = racers.SelectMany(a => a.Broadcasts).GroupBy(b => b.CallId).ToDictionary(g => g.Key, g => g.First().BroadcastAt);
    var published = new List<double>();
    var offered = new List<double>();
    var answered = new List<double>();
    var handedOver = new List<double>();
    foreach (var channel in channels.Where(c => Var(c, "ROUTER_STATUS") == CallStatus.Success))
    {
        var winner = racers.First(a => a.Name == Var(channel, "ROUTER_WINNER"));
        var callId = Guid.Parse(Var(channel, "ROUTER_CALL_ID"));
        if (!winner.Timings.TryGetValue(callId, out var t) || t.Answered == 0)
            continue;
        offered.Add(Stopwatch.GetElapsedTime(channel.StasisStartTimestamp, t.Offered).TotalMilliseconds);
        if (broadcasts.TryGetValue(callId, out var broadcastAt))
            published.Add((broadcastAt - (utcNow - Stopwatch.GetElapsedTime(channel.StasisStartTimestamp, stopwatchNow))).TotalMilliseconds);
        answered.Add(Stopwatch.GetElapsedTime(t.Offered, t.Answered).TotalMilliseconds);
        handedOver.Add(Stopwatch.GetElapsedTime(t.Offered, channel.HandoverTimestamp).TotalMilliseconds);
    }
    published.Sort();
    offered.Sort();
    answered.Sort();
    handedOver.Sort();
    return $"StasisStart → broadcast published by the adapter p50 {P(published, .5):F2} ms; StasisStart → broadcast at the app p50 {P(offered, .5):F2} ms; broadcast → claim answered p50 {P(answered, .5):F2} ms; broadcast → continue executed p50 {P(handedOver, .5):F2} ms";
}

static List<double> Latencies(List<Sim.SimChannel> channels, string status) =>
    [.. channels.Where(c => Var(c, "ROUTER_STATUS") == status).Select(c => Stopwatch.GetElapsedTime(c.StasisStartTimestamp, c.HandoverTimestamp).TotalMilliseconds).Order()];

static double Achieved(List<Sim.SimChannel> channels)
{
    var first = channels.Min(c => c.StasisStartTimestamp);
    var last = channels.Max(c => c.HandoverTimestamp);
    return channels.Count / Stopwatch.GetElapsedTime(first, last).TotalSeconds;
}

// A ladder step is clean when every call was won and decided within CleanP99Ms at the 99th percentile.
static bool Clean((int Rate, int Offered, int Won, double P99) step) => step.Won == step.Offered && step.P99 <= CleanP99Ms;

static int Count(List<Sim.SimChannel> channels, string status) => channels.Count(c => Var(c, "ROUTER_STATUS") == status);

// The node leading the router queue (asked of each node in turn) is killed after `after`, and started again 15 s later, so
// the management API (rabbit1's) answers again for the run's broker figures. Returns when it was killed.
async Task<long?> KillRouterQueueLeader(TimeSpan after)
{
    await Task.Delay(after);
    foreach (var asked in new[] { 1, 2, 3 })
    {
        var (code, json) = await Docker("exec", $"rabbit{asked}", "rabbitmqctl", "-q", "list_queues", "-p", broker.VirtualHost, "name", "leader", "--formatter", "json");
        if (code != 0)
            continue;
        var leader = System.Text.Json.JsonDocument.Parse(json).RootElement.EnumerateArray()
            .Single(q => q.GetProperty("name").GetString() == Topology.RouterQueue).GetProperty("leader").GetString()!["rabbit@".Length..];
        var killedAt = Stopwatch.GetTimestamp();
        await Docker("kill", leader);
        Console.WriteLine($"killed {leader}, the router queue's leader");
        _ = Task.Run(async () =>
        {
            await Task.Delay(TimeSpan.FromSeconds(15));
            await Docker("start", leader);
        });
        return killedAt;
    }
    Console.WriteLine("no node said which leads the router queue: nothing killed");
    return null;
}

// docker's standard output, read to the end; its errors go to the console as they come (unread, a full pipe would block it).
static async Task<(int Code, string Output)> Docker(params string[] arguments)
{
    using var process = Process.Start(new ProcessStartInfo("docker", arguments) { RedirectStandardOutput = true })!;
    var output = await process.StandardOutput.ReadToEndAsync();
    await process.WaitForExitAsync();
    return (process.ExitCode, output);
}

static string Var(Sim.SimChannel channel, string name) => channel.Variables.TryGetValue(name, out var value) ? value : "";

static double Max(List<double> sorted) => sorted.Count == 0 ? double.NaN : sorted[^1];

static double P(List<double> sorted, double q) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(sorted.Count * q) - 1)];

string Arg(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

static HttpClient Management(BrokerOptions broker)
{
    var http = new HttpClient { BaseAddress = new Uri($"http://{broker.Host}:{Environment.GetEnvironmentVariable("RABBITMQ_MANAGEMENT_PORT") ?? "15672"}/api/") };
    http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{broker.User}:{broker.Password}")));
    return http;
}

// Messages published and delivered in the virtual host, and bytes clients sent to and got from the broker (every connection).
static async Task<(double Published, double Delivered, double BytesIn, double BytesOut)> BrokerTotals(BrokerOptions broker)
{
    using var http = Management(broker);
    using var vhost = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync($"vhosts/{Uri.EscapeDataString(broker.VirtualHost)}"));
    var stats = vhost.RootElement.TryGetProperty("message_stats", out var m) ? m : default;
    double Stat(string name) => stats.ValueKind == System.Text.Json.JsonValueKind.Object && stats.TryGetProperty(name, out var v) ? v.GetDouble() : 0;
    double Octets(string name) => vhost.RootElement.TryGetProperty(name, out var v) ? v.GetDouble() : 0;
    return (Stat("publish"), Stat("deliver_get"), Octets("recv_oct"), Octets("send_oct"));
}

static async Task DeleteVirtualHost(BrokerOptions broker)
{
    using var http = Management(broker);
    await http.DeleteAsync($"vhosts/{broker.VirtualHost}");
}

static async Task<BrokerOptions> FreshVirtualHost(BrokerOptions broker)
{
    using var http = Management(broker);
    await SweepStaleVirtualHosts(http);
    var vhost = $"bench-{DateTime.UtcNow:yyyyMMddHHmmss}";
    (await http.PutAsync($"vhosts/{vhost}", null)).EnsureSuccessStatusCode();
    (await http.PutAsync($"permissions/{vhost}/{Uri.EscapeDataString(broker.User)}",
        new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
    broker.VirtualHost = vhost;
    return broker;
}

// A run that was killed leaves its bench-* virtual host behind, with whatever it held (once 26,000 persistent records,
// which every later run then shared the broker with). One that no client is connected to is deleted; one in use is
// another benchmark's, running now, and stays.
static async Task SweepStaleVirtualHosts(HttpClient http)
{
    using var vhosts = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync("vhosts"));
    foreach (var name in vhosts.RootElement.EnumerateArray().Select(v => v.GetProperty("name").GetString()!).Where(n => n.StartsWith("bench-", StringComparison.Ordinal)))
    {
        using var connections = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync($"vhosts/{Uri.EscapeDataString(name)}/connections"));
        if (connections.RootElement.GetArrayLength() > 0)
            continue;
        (await http.DeleteAsync($"vhosts/{Uri.EscapeDataString(name)}")).EnsureSuccessStatusCode();
        Console.Error.WriteLine($"Deleted {name}, a virtual host a killed benchmark left behind");
    }
}

/// <param name="BrokerCpuSeconds">The local RabbitMQ node's CPU over the same window (NaN when it is not on this machine or in containers).</param>
/// <param name="BenchmarkCpuSeconds">This process's CPU over the same window: the ARI simulator standing in for Asterisk, the racing apps and the load.</param>
internal readonly record struct CpuTotals(double Router, double Adapter, double Broker, double Benchmark)
{
    public static CpuTotals operator -(CpuTotals a, CpuTotals b) => new(a.Router - b.Router, a.Adapter - b.Adapter, a.Broker - b.Broker, a.Benchmark - b.Benchmark);
    public static CpuTotals operator /(CpuTotals a, double by) => new(a.Router / by, a.Adapter / by, a.Broker / by, a.Benchmark / by);
}

internal sealed record CallCost(int Rate, List<Sim.SimChannel> Run, (double Router, double Adapter) Cpu, double RouterCpuSeconds, double AdapterCpuSeconds,
    (double Published, double Delivered, double BytesIn, double BytesOut) Broker, int AriRequests, double BrokerCpuSeconds, double BenchmarkCpuSeconds);
