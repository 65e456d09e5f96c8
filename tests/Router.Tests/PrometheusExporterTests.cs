using System.Diagnostics.Metrics;
using CallRouter.Operations;
using Xunit;

namespace CallRouter.Tests;

/// <summary>The text exposition format 0.0.4, exactly as the exporter writes it.</summary>
public sealed class PrometheusExporterTests : IDisposable
{
    private readonly Meter _meter = new($"Test.Exporter.{Guid.NewGuid():N}");
    private readonly PrometheusExporter _exporter;

    public PrometheusExporterTests() => _exporter = new PrometheusExporter(m => ReferenceEquals(m, _meter));

    [Fact]
    public void Counters_get_total_help_and_type_and_label_values_are_escaped()
    {
        var counter = _meter.CreateCounter<long>("test.calls", "{call}", "Calls, with a \\ backslash\nand a line feed");
        counter.Add(2, new KeyValuePair<string, object?>("app", "say \"hi\""), new KeyValuePair<string, object?>("reason", "a\\b\nc"));
        counter.Add(3, new KeyValuePair<string, object?>("reason", "a\\b\nc"), new KeyValuePair<string, object?>("app", "say \"hi\""));
        counter.Add(1, new KeyValuePair<string, object?>("app", "plain"), new KeyValuePair<string, object?>("reason", "x"));

        Assert.Equal(
            "# HELP test_calls_total Calls, with a \\\\ backslash\\nand a line feed\n" +
            "# TYPE test_calls_total counter\n" +
            "test_calls_total{app=\"plain\",reason=\"x\"} 1\n" +
            "test_calls_total{app=\"say \\\"hi\\\"\",reason=\"a\\\\b\\nc\"} 5\n",
            _exporter.Scrape());
    }

    [Fact]
    public void Histogram_buckets_are_cumulative_and_end_with_plus_inf_equal_to_the_count()
    {
        var histogram = _meter.CreateHistogram("test.latency", "s", "Latency",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.5, 1, 2.5] });
        foreach (var value in new[] { 0.25, 0.5, 1, 2, 7 })
            histogram.Record(value, new KeyValuePair<string, object?>("status", "SUCCESS"));

        Assert.Equal(
            "# HELP test_latency_seconds Latency\n" +
            "# TYPE test_latency_seconds histogram\n" +
            "test_latency_seconds_bucket{status=\"SUCCESS\",le=\"0.5\"} 2\n" +
            "test_latency_seconds_bucket{status=\"SUCCESS\",le=\"1\"} 3\n" +
            "test_latency_seconds_bucket{status=\"SUCCESS\",le=\"2.5\"} 4\n" +
            "test_latency_seconds_bucket{status=\"SUCCESS\",le=\"+Inf\"} 5\n" +
            "test_latency_seconds_sum{status=\"SUCCESS\"} 10.75\n" +
            "test_latency_seconds_count{status=\"SUCCESS\"} 5\n",
            _exporter.Scrape());
    }

    [Fact]
    public void Up_down_counters_and_observable_gauges_are_gauges_and_observed_series_can_disappear()
    {
        var open = _meter.CreateUpDownCounter<int>("test.open", null, "Open");
        open.Add(3);
        open.Add(-1);
        var apps = new List<string> { "a", "b" };
        _meter.CreateObservableGauge("test.live", () => apps.Select(a => new Measurement<int>(1, new KeyValuePair<string, object?>("app", a))), null, "Live");

        Assert.Equal(
            "# HELP test_live Live\n# TYPE test_live gauge\ntest_live{app=\"a\"} 1\ntest_live{app=\"b\"} 1\n" +
            "# HELP test_open Open\n# TYPE test_open gauge\ntest_open 2\n",
            _exporter.Scrape());

        apps.Remove("a");
        Assert.Contains("test_live{app=\"b\"} 1\n# HELP test_open", _exporter.Scrape());
        Assert.DoesNotContain("app=\"a\"", _exporter.Scrape());
    }

    [Fact]
    public void Names_and_values_are_sanitised_and_formatted_for_prometheus()
    {
        Assert.Equal("a_b_c_d", PrometheusExporter.MetricName("a.b-c d"));
        Assert.Equal("_9lives", PrometheusExporter.MetricName("9lives"));
        Assert.Equal("+Inf", PrometheusExporter.FormatValue(double.PositiveInfinity));
        Assert.Equal("-Inf", PrometheusExporter.FormatValue(double.NegativeInfinity));
        Assert.Equal("NaN", PrometheusExporter.FormatValue(double.NaN));
        Assert.Equal("0.001", PrometheusExporter.FormatValue(0.001));
        Assert.Equal("1E-07", PrometheusExporter.FormatValue(1e-7));
    }

    [Fact]
    public void Other_meters_are_not_exported()
    {
        using var other = new Meter(_meter.Name);
        other.CreateCounter<long>("test.elsewhere").Add(1);
        Assert.Equal("", _exporter.Scrape());
    }

    public void Dispose()
    {
        _exporter.Dispose();
        _meter.Dispose();
    }
}
