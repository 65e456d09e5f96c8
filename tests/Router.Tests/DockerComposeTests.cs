using System.Diagnostics;
using System.Text.RegularExpressions;
using CallRouter.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace CallRouter.Tests;

/// <summary>
/// infra/docker-compose.yml is a valid Compose file with the four services. No Docker engine runs here, so this checks
/// the file with the Compose client's own <c>config</c> (which needs none): <c>docker compose</c>, else <c>docker-compose</c>.
/// </summary>
public sealed partial class DockerComposeTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_compose_file_is_valid_and_has_rabbitmq_postgres_router_and_adapter_each_with_a_healthcheck()
    {
        var compose = await FindCompose();
        output.WriteLine($"compose client: {string.Join(' ', compose)}");

        var config = await Run(compose, "-f", "infra/docker-compose.yml", "config");
        Assert.True(config.ExitCode == 0, $"compose config exited {config.ExitCode}:\n{config.Stderr}\n{config.Stdout}");
        var services = await Run(compose, "-f", "infra/docker-compose.yml", "config", "--services");
        Assert.True(services.ExitCode == 0, services.Stderr);
        Assert.Equal(["adapter", "postgres", "rabbitmq", "router"], services.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order());

        Assert.Equal(4, HealthcheckKey().Matches(config.Stdout).Count);
        foreach (var setting in new[] { "Postgres__ConnectionString", "Router__SagaRepository", "Adapter__AriUrl", "RABBITMQ_HOST" })
            Assert.Contains(setting + ":", config.Stdout);
    }

    /// <summary>The Compose v2 plugin if the docker client has it, else the standalone docker-compose (Debian's package).</summary>
    private static async Task<string[]> FindCompose()
    {
        string[][] candidates = [["docker", "compose"], ["docker-compose"]];
        foreach (var candidate in candidates)
            if ((await Run(candidate, "version")).ExitCode == 0)
                return candidate;
        Assert.Fail("neither 'docker compose' nor 'docker-compose' runs: install Debian's docker-compose (infra/provision.sh does)");
        return [];
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> Run(string[] command, params string[] arguments)
    {
        var start = new ProcessStartInfo(command[0], command.Skip(1).Concat(arguments))
        {
            WorkingDirectory = ExampleApp.RepositoryRoot, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        try
        {
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return (process.ExitCode, await stdout, await stderr);
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            return (-1, "", exception.Message);
        }
    }

    [GeneratedRegex(@"^\s+healthcheck:\s*$", RegexOptions.Multiline)]
    private static partial Regex HealthcheckKey();
}
