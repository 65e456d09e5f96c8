using System.Globalization;
using Microsoft.Extensions.Hosting;

namespace CallRouter.Tests.Infrastructure;

/// <summary>A host's /metrics, read as the text a Prometheus server reads: sample line → value.</summary>
public sealed class Scrape
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private Scrape(string text, Dictionary<string, double> samples)
    {
        Text = text;
        Samples = samples;
    }

    public string Text { get; }

    /// <summary>Every sample by its series, e.g. <c>callrouter_router_wins_total{app="sales"}</c>.</summary>
    public IReadOnlyDictionary<string, double> Samples { get; }

    /// <summary>A series' value; 0 when the series has not been written (no measurement yet).</summary>
    public double this[string series] => Samples.GetValueOrDefault(series);

    /// <summary>The sum of every series of one metric name whose labels contain all the given ones.</summary>
    public double Sum(string name, params string[] labels) =>
        Samples.Where(s => (s.Key == name || s.Key.StartsWith(name + "{", StringComparison.Ordinal)) && labels.All(s.Key.Contains)).Sum(s => s.Value);

    public static async Task<Scrape> Of(IHost host)
    {
        var response = await Http.GetAsync(new Uri(RoutingStack.HttpAddress(host), "/metrics"));
        response.EnsureSuccessStatusCode();
        return Parse(await response.Content.ReadAsStringAsync());
    }

    public static Scrape Parse(string text)
    {
        var samples = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('#'))
                continue;
            var space = line.LastIndexOf(' ');
            var value = line[(space + 1)..] switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                var v => double.Parse(v, CultureInfo.InvariantCulture),
            };
            samples[line[..space]] = value;
        }
        return new Scrape(text, samples);
    }
}
