using System.Collections.Concurrent;
using System.Diagnostics;

namespace CallRouter.Tests.Infrastructure;

/// <summary>Paths in this repository.</summary>
public static class Repository
{
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Router.sln")))
                return dir.FullName;
        throw new InvalidOperationException("Router.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>The router as its own OS process (CallRouter.Router.dll next to the tests), configured through environment variables.</summary>
public sealed class RouterProcess : IAsyncDisposable
{
    private readonly Process _process;

    private RouterProcess(string name, Process process) => (Name, _process) = (name, process);

    public string Name { get; }

    /// <summary>Its stderr/stdout lines (warnings and errors).</summary>
    public ConcurrentQueue<string> Output { get; } = new();

    public static RouterProcess Start(string name, IEnumerable<KeyValuePair<string, string?>> settings)
    {
        // The router's own build output: its deps.json matches its dlls (the copy next to the tests resolves other versions).
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name; // bin/<Configuration>/net10.0
        var dll = Path.Combine(Repository.Root, "src", "Router", "bin", configuration, "net10.0", "CallRouter.Router.dll");
        if (!File.Exists(dll))
            throw new InvalidOperationException($"{dll} is missing: build the solution (dotnet build Router.sln -c {configuration})");
        var start = new ProcessStartInfo("dotnet", [dll]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in settings)
            start.Environment[key.Replace(":", "__")] = value;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {dll}");
        var router = new RouterProcess(name, process);
        process.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) router.Output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) router.Output.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return router;
    }

    /// <summary>SIGKILL, as kill -9: no shutdown, no acks, nothing flushed.</summary>
    public void KillHard()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
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
