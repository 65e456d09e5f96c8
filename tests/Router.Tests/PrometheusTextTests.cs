using CallRouter.Status;
using Xunit;

namespace CallRouter.Tests;

/// <summary>The one reader of the text exposition format (status command and tests alike).</summary>
public sealed class PrometheusTextTests
{
    [Fact]
    public void Samples_keep_names_labels_and_values_with_escapes_timestamps_and_special_values()
    {
        var samples = PrometheusText.Parse(
            "# HELP a_total Calls, with a \\\\ backslash\n" +
            "# TYPE a_total counter\n" +
            "a_total{status=\"SUCCESS\",app=\"say \\\"hi\\\", a\\\\b\\nc\"} 5\r\n" +
            "b{} 2 1700000000000\n" +
            "c 1E-07\n" +
            "d_bucket{status=\"TIMEOUT\",le=\"+Inf\"} +Inf\n" +
            "e NaN\n\n");

        Assert.Equal(["a_total", "b", "c", "d_bucket", "e"], samples.Select(s => s.Name));
        Assert.Equal("say \"hi\", a\\b\nc", samples[0].Label("app"));
        Assert.Equal("SUCCESS", samples[0].Label("status"));
        Assert.Equal("", samples[0].Label("reason"));
        Assert.Equal([5, 2, 1e-7, double.PositiveInfinity], samples.Take(4).Select(s => s.Value));
        Assert.True(double.IsNaN(samples[4].Value));
    }

    [Fact]
    public void A_series_is_named_with_labels_sorted_le_last_and_values_escaped_as_promql_writes_them()
    {
        var samples = PrometheusText.Parse(
            "x_total{status=\"SUCCESS\",reason=\"claimed\"} 1\n" +
            "y_bucket{le=\"0.5\",status=\"SUCCESS\"} 2\n" +
            "z{app=\"q\\\"x\"} 3\n" +
            "w{} 4\n");

        Assert.Equal(["x_total{reason=\"claimed\",status=\"SUCCESS\"}", "y_bucket{status=\"SUCCESS\",le=\"0.5\"}", "z{app=\"q\\\"x\"}", "w"],
            samples.Select(s => s.Series));
    }

    [Theory]
    [InlineData("novalue")]
    [InlineData("a{app=\"unterminated} 1")]
    [InlineData("a{app=1} 1")]
    [InlineData("a notanumber")]
    public void A_malformed_line_is_a_format_error(string line) =>
        Assert.Throws<FormatException>(() => PrometheusText.Parse(line));
}
