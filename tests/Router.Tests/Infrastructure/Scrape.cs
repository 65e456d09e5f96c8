using CallRouter.Status;
using Microsoft.Extensions.Hosting;

namespace CallRouter.Tests.Infrastructure;

/// <summary>A host's /metrics, read with the status command's parser (<see cref="PrometheusText"/>): series → value.</summary>
public sealed class Scrape
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private Scrape(string text, Dictionary<string, double> samples)
    {
        Text = text;
        Samples = samples;
    }

    public string Text { get; }

    /// <summary>Every sample by its series (<see cref="Sample.Series"/>), e.g. <c>callrouter_router_wins_total{app="sales"}</c>.</summary>
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

    public static Scrape Parse(string text) =>
        new(text, PrometheusText.Parse(text).ToDictionary(s => s.Series, s => s.Value, StringComparer.Ordinal));
}
