using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Reflection;
using CallRouter.Common;
using CallRouter.Messages;

namespace CallRouter.Tests.Infrastructure;

/// <summary>One example app of examples/ running as a child process against a test broker; keeps what it prints.</summary>
public sealed class ExampleApp : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stderr = new();

    private ExampleApp(string language, string app, Process process)
    {
        Language = language;
        App = app;
        _process = process;
    }

    /// <summary>The repository checkout the tests were built from (examples/ and infra/ live there).</summary>
    public static string RepositoryRoot { get; } = Metadata("RepositoryRoot");

    /// <summary>The C# example, built with the tests (Router.Tests references its project).</summary>
    public static string CSharpClaimantDll { get; } = Metadata("ExampleClaimantDll");

    public string Language { get; }
    public string App { get; }

    /// <summary>Lines printed on stdout so far.</summary>
    public ConcurrentQueue<string> Lines { get; } = new();

    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <paramref name="fileName"/> in the repository root with RABBITMQ_* pointing at <paramref name="broker"/>.</summary>
    public static ExampleApp Start(string language, string app, BrokerOptions broker, string fileName, params string[] arguments)
    {
        var start = new ProcessStartInfo(fileName, arguments)
        {
            WorkingDirectory = RepositoryRoot, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.Environment["RABBITMQ_HOST"] = broker.Host;
        start.Environment["RABBITMQ_PORT"] = broker.Port.ToString();
        start.Environment["RABBITMQ_VHOST"] = broker.VirtualHost;
        start.Environment["RABBITMQ_USER"] = broker.User;
        start.Environment["RABBITMQ_PASSWORD"] = broker.Password;
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (Win32Exception exception)
        {
            throw new InvalidOperationException($"the {language} example could not start '{fileName}': {exception.Message}; run infra/provision.sh", exception);
        }
        var example = new ExampleApp(language, app, process);
        process.OutputDataReceived += (_, line) =>
        {
            if (line.Data is not null)
                example.Lines.Enqueue(line.Data);
        };
        process.ErrorDataReceived += (_, line) =>
        {
            if (line.Data is not null)
                example._stderr.Enqueue(line.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return example;
    }

    /// <summary>Sends SIGTERM, as a service manager would.</summary>
    public async Task Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()])!;
        await kill.WaitForExitAsync();
    }

    public async Task WaitForExit(TimeSpan within)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(within);
        }
        catch (TimeoutException exception)
        {
            throw new TimeoutException($"{Language} example did not exit within {within}\n{Describe()}", exception);
        }
        // The parameterless wait drains the redirected streams too.
        _process.WaitForExit();
    }

    /// <summary>Everything it printed, for failure messages.</summary>
    public string Describe() =>
        $"--- {Language} ({App}){(_process.HasExited ? $", exit {_process.ExitCode}" : "")}\nstdout:\n{string.Join('\n', Lines)}\nstderr:\n{string.Join('\n', _stderr)}";

    public void Dispose()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }

    private static string Metadata(string key) =>
        typeof(ExampleApp).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
}
