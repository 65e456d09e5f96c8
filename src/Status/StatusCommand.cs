using Spectre.Console;

namespace CallRouter.Status;

/// <summary>The status command: one snapshot (--once) or a refreshing view until cancelled.</summary>
public static class StatusCommand
{
    public static async Task<int> Run(IReadOnlyList<string> args, IAnsiConsole console, Func<string, string?> environment, CancellationToken cancellationToken)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            console.WriteLine(StatusOptions.Usage);
            return 0;
        }
        var (options, error) = StatusOptions.Parse(args, environment);
        if (options is null)
        {
            console.WriteLine(error!);
            console.WriteLine(StatusOptions.Usage);
            return 2;
        }

        using var reader = new StatusReader(options);
        if (options.Once)
        {
            console.Write(StatusView.Render(await reader.Read(cancellationToken), options));
            return 0;
        }

        await console.Live(new Markup("reading…")).StartAsync(async live =>
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    live.UpdateTarget(StatusView.Render(await reader.Read(cancellationToken), options));
                    live.Refresh();
                    await Task.Delay(options.Interval, cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    break;
                }
            }
        });
        return 0;
    }
}
