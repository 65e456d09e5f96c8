using CallRouter.Status;
using Spectre.Console;

// Operators' view of a running deployment: ./status.sh [--once] (README, "Operations: metrics, health, status").
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
if (Console.IsOutputRedirected)
    AnsiConsole.Profile.Width = 200;
return await StatusCommand.Run(args, AnsiConsole.Console, Environment.GetEnvironmentVariable, stop.Token);
