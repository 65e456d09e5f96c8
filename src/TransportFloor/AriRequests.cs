using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using CallRouter.AriSimulator;

namespace CallRouter.TransportFloor;

/// <summary>
/// The adapter's REST requests per call (the ROUTER_* variables in one ARRAY set, the continue, the channel
/// subscription), sent by a child process with an HttpClient set up as the adapter's, to the simulator. The channels do
/// not exist: each request is answered at once (404), which is the client's cost without Asterisk's work or events.
/// </summary>
public static class AriRequests
{
    public const int PerCall = 3;

    public static async Task<double> Measure(int rate, int seconds)
    {
        await using var ari = await AriSimulator.AriSimulator.StartAsync();
        using var child = Process.Start(new ProcessStartInfo("dotnet",
            [typeof(AriRequests).Assembly.Location, "--ari", ari.BaseUrl.ToString(), rate.ToString(), seconds.ToString()])
        {
            RedirectStandardOutput = true,
        })!;
        try
        {
            if (await child.StandardOutput.ReadLineAsync() != "measuring")
                throw new InvalidOperationException("the ARI client did not warm up");
            child.Refresh();
            var before = child.TotalProcessorTime;
            if (await child.StandardOutput.ReadLineAsync() != "done")
                throw new InvalidOperationException("the ARI client did not finish");
            child.Refresh();
            return (child.TotalProcessorTime - before).TotalMilliseconds / (rate * seconds);
        }
        finally
        {
            await child.WaitForExitAsync();
        }
    }

    /// <summary>The child: a warm-up, "measuring", the measured run, "done".</summary>
    public static async Task Run(Uri baseUrl, int rate, int seconds)
    {
        var options = new AriSimulatorOptions();
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64, UseProxy = false })
        {
            BaseAddress = new Uri(baseUrl, "ari/"),
        };
        http.DefaultRequestHeaders.Authorization =
            new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.User}:{options.Password}")));
        await Load(http, rate, Consumers.WarmupSeconds);
        Console.WriteLine("measuring");
        await Load(http, rate, seconds);
        Console.WriteLine("done");
    }

    private static async Task Load(HttpClient http, int rate, int seconds)
    {
        var calls = new List<Task>();
        var clock = Stopwatch.StartNew();
        for (long call = 0, total = (long)rate * seconds; call < total; await Task.Delay(2))
            for (var due = Math.Min((long)(clock.Elapsed.TotalSeconds * rate), total); call < due; call++)
                calls.Add(Call(http, $"floor-{call}"));
        await Task.WhenAll(calls);
    }

    private static async Task Call(HttpClient http, string channel)
    {
        using (await http.PostAsync($"channels/{channel}/variable?variable=ARRAY(ROUTER_STATUS,ROUTER_REASON,ROUTER_WINNER)&value=SUCCESS,claimed,sales", null))
        {
        }
        using (await http.PostAsync($"channels/{channel}/continue", null))
        {
        }
        using (await http.PostAsync($"applications/call-router/subscription?eventSource=channel:{channel}", null))
        {
        }
    }
}
