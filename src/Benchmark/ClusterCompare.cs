using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace CallRouter.Benchmark;

/// <summary>
/// <c>./bench.sh --cluster-compare</c>: the same fixed-rate run against one node (classic queues) and against a three-node
/// cluster (quorum queues, started with infra/cluster.sh), one after the other in one invocation, reported side by side,
/// so the cost of replication is a measured number (issue 13). Each run is this benchmark again as a child process with
/// <c>--fixed-only</c>, so both start from the same state (fresh router, adapter and virtual host).
/// </summary>
public static class ClusterCompare
{
    /// <summary>What one fixed-rate run measured (per call: broker client traffic from the management API, and CPU).</summary>
    public sealed record FixedRun(int Rate, int Calls, double Achieved, double P50, double P99, int Won, int Timeouts,
        double Published, double Delivered, double KiBIn, double KiBOut, double RouterCpuMs, double AdapterCpuMs,
        double? StoppedSeconds = null, int? NotWon = null, double? BrokerCpuMs = null);

    public static async Task<int> Run(string[] args)
    {
        var nodes = Arg(args, "--cluster", "127.0.0.1:5681,127.0.0.1:5682,127.0.0.1:5683");
        var management = Arg(args, "--cluster-management-port", "15681");
        var output = Arg(args, "--out", "docs/benchmarks.md");
        // The rate both runs are offered: a cluster of three Erlang VMs on the benchmark's own cores saturates early.
        var rate = Arg(args, "--rate", "100");
        var seconds = Arg(args, "--seconds", "20");
        var apps = Arg(args, "--apps", "3");
        // Optional: the cluster's run loses the node leading the router queue this many seconds in (0: no kill).
        var killAfter = Arg(args, "--kill-leader-after", "0");
        var self = typeof(ClusterCompare).Assembly.Location;
        var loadBefore = File.ReadAllText("/proc/loadavg").Split(' ')[0];

        Console.WriteLine("one node: the broker of RABBITMQ_HOST, classic queues");
        var single = await Child(self, ["--rate", rate, "--seconds", seconds, "--apps", apps], cluster: null);
        Console.WriteLine("cluster: infra/cluster.sh up");
        await Shell("infra/cluster.sh", "up");
        FixedRun clustered;
        try
        {
            clustered = await Child(self, ["--rate", rate, "--seconds", seconds, "--apps", apps, "--cluster", nodes, "--cluster-management-port", management,
                    "--kill-leader-after", killAfter], cluster: nodes);
        }
        finally
        {
            // Three Erlang VMs idle on shared cores cost CPU: the cluster goes as it came (infra/cluster.sh up starts it again).
            if (!args.Contains("--keep-cluster"))
                await Shell("infra/cluster.sh", "down");
        }

        var b = new StringBuilder();
        b.AppendLine().AppendLine($"## {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: one node against a three-node cluster").AppendLine();
        b.AppendLine($"Machine: {Environment.ProcessorCount} cores, 1-minute load average {loadBefore} before, {File.ReadAllText("/proc/loadavg").Split(' ')[0]} after; " +
            $"every broker node, router, adapter, simulator and apps on this box. Command: `./bench.sh {string.Join(' ', args)}`; the same fixed-rate run " +
            $"({rate} calls/s for {seconds} s, {apps} racing apps, in-memory saga, 2 s timeout) after a 1,000-call warm-up, first on one node (classic queues), " +
            $"then on the cluster ({nodes}, quorum queues, publisher confirms). Per call: broker client traffic (management API, whole virtual host; " +
            "a quorum queue's replication to its two followers comes on top) and CPU from the first call until the last call's timers fired.").AppendLine();
        b.AppendLine("| broker | offered | calls/s achieved | won | timeouts | p50 ms | p99 ms | published | delivered | KiB in | KiB out | router CPU ms | adapter CPU ms |");
        b.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        b.AppendLine(Row("one node, classic queues", single));
        b.AppendLine(Row("three nodes, quorum queues", clustered));
        b.AppendLine().AppendLine($"- The cluster's p50 is {clustered.P50 / single.P50:F1} times one node's, its p99 {clustered.P99 / single.P99:F1} times.");
        if (clustered.StoppedSeconds is { } stopped)
            b.AppendLine(
                $"- The node leading the router queue was killed (`docker kill`) {killAfter} s into the cluster's run, and started again 15 s later: " +
                $"decisions stopped for {stopped.ToString("F1", CultureInfo.InvariantCulture)} s (from the kill to the last call not won), {clustered.NotWon} calls were not won (they fell back " +
                "to the dialplan), and the cluster's latency and broker figures above include the loss (its message counters restart with the node).");
        Console.WriteLine(b);
        await File.AppendAllTextAsync(output, b.ToString());
        return 0;
    }

    private static string Row(string broker, FixedRun r) =>
        string.Create(CultureInfo.InvariantCulture,
            $"| {broker} | {r.Rate}/s | {r.Achieved:F0} | {r.Won:N0} of {r.Calls:N0} | {r.Timeouts} | {r.P50:F2} | {r.P99:F2} | {r.Published:F1} | {r.Delivered:F1} | {r.KiBIn:F1} | {r.KiBOut:F1} | {r.RouterCpuMs:F2} | {r.AdapterCpuMs:F2} |");

    /// <summary>The benchmark with <c>--fixed-only</c>; <paramref name="cluster"/> null: one node (no cluster variables inherited).</summary>
    private static async Task<FixedRun> Child(string self, string[] args, string? cluster)
    {
        var result = Path.GetTempFileName();
        var start = new ProcessStartInfo("dotnet", [self, .. args, "--fixed-only", result, "--controlled-rate", "0"]);
        if (cluster is null)
        {
            start.Environment.Remove("RABBITMQ_HOSTS");
            start.Environment.Remove("RABBITMQ_QUEUE_TYPE");
            start.Environment.Remove("RABBITMQ_MANAGEMENT_PORT");
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the benchmark");
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"the {(cluster is null ? "one-node" : "cluster")} run exited {process.ExitCode}");
        var run = JsonSerializer.Deserialize<FixedRun>(await File.ReadAllTextAsync(result))!;
        File.Delete(result);
        return run;
    }

    private static async Task Shell(string script, string argument)
    {
        using var process = Process.Start(new ProcessStartInfo(script, [argument])) ?? throw new InvalidOperationException($"could not run {script}");
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{script} {argument} exited {process.ExitCode}");
    }

    private static string Arg(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}
