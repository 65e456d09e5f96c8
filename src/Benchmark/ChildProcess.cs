using System.Diagnostics;
using System.Globalization;

namespace CallRouter.Benchmark;

/// <summary>A router or adapter run as its own process, so its CPU time and peak memory can be read from /proc.</summary>
public sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public static ChildProcess Start(string name, string dll, IDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("dotnet", [dll]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in environment)
            start.Environment[key] = value;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {dll}");
        process.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) Console.Error.WriteLine($"  [{name}] {e.Data}"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) Console.Error.WriteLine($"  [{name}] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ChildProcess(name, process);
    }

    /// <summary>User + system CPU seconds so far.</summary>
    public double CpuSeconds
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime.TotalSeconds;
        }
    }

    /// <summary>
    /// CPU seconds so far of the runtime's tiered-compilation thread (".NET Tiered Com"), which compiles hot methods
    /// again, optimised, in the background: how far the process still is from its steady state after it started.
    /// </summary>
    public double TierUpCpuSeconds => ProcessCpu.ThreadCpuSeconds(_process.Id, ".NET Tiered Com");

    /// <summary>Resident memory now and at its peak (VmRSS / VmHWM), in MB.</summary>
    public (double Now, double Peak) RssMb()
    {
        double Read(string key) => File.ReadLines($"/proc/{_process.Id}/status")
            .Where(l => l.StartsWith(key, StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024).FirstOrDefault();
        return (Read("VmRSS:"), Read("VmHWM:"));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}

/// <summary>CPU time read from /proc (Linux), for processes the benchmark did not start as well as for its own.</summary>
public static class ProcessCpu
{
    private const double TicksPerSecond = 100; // USER_HZ: 100 on every Linux the runtime supports

    /// <summary>utime + stime of one process (all its threads), in seconds.</summary>
    public static double CpuSeconds(int pid) => Ticks($"/proc/{pid}/stat") / TicksPerSecond;

    /// <summary>utime + stime of a process's threads whose name starts with <paramref name="threadName"/>, in seconds.</summary>
    public static double ThreadCpuSeconds(int pid, string threadName)
    {
        double ticks = 0;
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith(threadName, StringComparison.Ordinal))
                    ticks += Ticks(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                // The thread ended between the listing and the read.
            }
        }
        return ticks / TicksPerSecond;
    }

    /// <summary>
    /// The local RabbitMQ node's process (beam.smp outside any container), or null when the broker is elsewhere or in
    /// containers: its CPU can then not be read from here.
    /// </summary>
    public static int? LocalBroker()
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
                continue;
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "comm")).Trim() == "beam.smp"
                    && File.ReadAllText(Path.Combine(dir, "cmdline")).Contains("rabbit", StringComparison.Ordinal)
                    && !File.ReadAllText(Path.Combine(dir, "cgroup")).Contains("docker", StringComparison.Ordinal))
                    found.Add(pid);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return found.Count == 1 ? found[0] : null;
    }

    // Fields 14 and 15 of /proc/.../stat (utime, stime), counted after the command name's closing parenthesis.
    private static double Ticks(string statPath)
    {
        var stat = File.ReadAllText(statPath);
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture);
    }
}

/// <summary>Several child processes, all stopped when disposed (also when the run fails half-way).</summary>
public sealed class ChildProcesses : List<ChildProcess>, IAsyncDisposable
{
    public async ValueTask DisposeAsync()
    {
        foreach (var child in this)
            await child.DisposeAsync();
        Clear();
    }
}
