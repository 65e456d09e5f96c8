using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace CallRouter.Operations;

/// <summary>
/// Collects the measurements of chosen meters with a <see cref="MeterListener"/> and writes them in the Prometheus text
/// exposition format 0.0.4: counters as <c>name_total</c>, up-down counters and gauges as gauges, histograms as
/// cumulative <c>_bucket{le=...}</c> series with <c>_sum</c> and <c>_count</c>.
/// </summary>
public sealed class PrometheusExporter : IDisposable
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Prometheus' default buckets, for histograms that do not advise their own.</summary>
    public static readonly double[] DefaultBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, Metric> _metrics = new();
    private readonly Lock _scrape = new();

    /// <param name="include">Which meters to export (e.g. one name, and the DI container's meter factory as scope).</param>
    public PrometheusExporter(Func<Meter, bool> include)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (!include(instrument.Meter) || Metric.For(instrument) is not { } metric)
                return;
            _metrics[instrument] = metric;
            listener.EnableMeasurementEvents(instrument, metric);
        };
        _listener.MeasurementsCompleted = (instrument, _) => _metrics.TryRemove(instrument, out Metric? _);
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((Metric)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<int>((_, value, tags, state) => ((Metric)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((Metric)state!).Record(value, tags));
        _listener.Start();
    }

    /// <summary>The current values of every exported instrument, in the text format.</summary>
    public string Scrape()
    {
        lock (_scrape)
        {
            foreach (var metric in _metrics.Values)
                metric.BeginObservation();
            _listener.RecordObservableInstruments();
            var text = new StringBuilder();
            foreach (var metric in _metrics.Values.OrderBy(m => m.Name, StringComparer.Ordinal))
                metric.Write(text);
            return text.ToString();
        }
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>A metric name as Prometheus allows it: [a-zA-Z_:][a-zA-Z0-9_:]*.</summary>
    public static string MetricName(string name)
    {
        var chars = name.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
        {
            var c = chars[i];
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_' || c == ':'))
                chars[i] = '_';
        }
        var valid = new string(chars);
        return valid.Length == 0 || char.IsAsciiDigit(valid[0]) ? "_" + valid : valid;
    }

    /// <summary>A label name as Prometheus allows it: [a-zA-Z_][a-zA-Z0-9_]*.</summary>
    public static string LabelName(string name) => MetricName(name).Replace(':', '_');

    /// <summary>A label value inside double quotes: backslash, double quote and line feed escaped.</summary>
    public static string EscapeLabelValue(string value) =>
        value.Replace("\\", @"\\").Replace("\"", "\\\"").Replace("\n", @"\n");

    /// <summary>HELP text: backslash and line feed escaped.</summary>
    public static string EscapeHelp(string text) => text.Replace("\\", @"\\").Replace("\n", @"\n");

    /// <summary>A sample value: shortest round-trip form, +Inf, -Inf or NaN.</summary>
    public static string FormatValue(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf"
        : double.IsNaN(value) ? "NaN"
        : value.ToString("R", CultureInfo.InvariantCulture);

    private enum Kind { Counter, Gauge, Histogram }

    /// <summary>One instrument's series, keyed by their tag set.</summary>
    private sealed class Metric
    {
        private readonly ConcurrentDictionary<SeriesKey, Series> _series = new();
        private readonly Kind _kind;
        private readonly bool _observable;
        private readonly bool _absolute;
        private readonly double[] _bounds;
        private readonly string _help;

        private Metric(string name, string help, Kind kind, bool observable, bool absolute, double[] bounds)
        {
            Name = name;
            _help = help;
            _kind = kind;
            _observable = observable;
            _absolute = absolute;
            _bounds = bounds;
        }

        public string Name { get; }

        public static Metric? For(Instrument instrument)
        {
            var type = instrument.GetType();
            var generic = type.IsGenericType ? type.GetGenericTypeDefinition() : type;
            var name = MetricName(instrument.Name);
            if (instrument.Unit == "s" && !name.EndsWith("_seconds", StringComparison.Ordinal))
                name += "_seconds";
            var help = instrument.Description ?? instrument.Name;
            return generic switch
            {
                _ when generic == typeof(Counter<>) => new Metric(name + "_total", help, Kind.Counter, false, false, []),
                _ when generic == typeof(ObservableCounter<>) => new Metric(name + "_total", help, Kind.Counter, true, true, []),
                _ when generic == typeof(UpDownCounter<>) => new Metric(name, help, Kind.Gauge, false, false, []),
                _ when generic == typeof(ObservableUpDownCounter<>) => new Metric(name, help, Kind.Gauge, true, true, []),
                _ when generic == typeof(ObservableGauge<>) => new Metric(name, help, Kind.Gauge, true, true, []),
                _ when generic == typeof(Gauge<>) => new Metric(name, help, Kind.Gauge, false, true, []),
                _ when generic == typeof(Histogram<>) => new Metric(name, help, Kind.Histogram, false, false, BucketsOf(instrument)),
                _ => null,
            };
        }

        private static double[] BucketsOf(Instrument instrument)
        {
            IReadOnlyList<double>? advised = instrument switch
            {
                Histogram<double> h => h.Advice?.HistogramBucketBoundaries,
                Histogram<long> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
                Histogram<int> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
                _ => null,
            };
            return [.. (advised ?? DefaultBuckets).Order()];
        }

        /// <summary>Observable instruments report every current series at each scrape: forget the last ones first.</summary>
        public void BeginObservation()
        {
            if (_observable)
                _series.Clear();
        }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var key = SeriesKey.Of(tags);
            if (!_series.TryGetValue(key, out var series))
                series = _series.GetOrAdd(key, new Series(Labels(tags), _bounds.Length));
            if (_kind == Kind.Histogram)
                series.Observe(value, _bounds);
            else if (_absolute)
                series.Set(value);
            else
                series.Add(value);
        }

        private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var sorted = tags.ToArray();
            Array.Sort(sorted, (a, b) => string.CompareOrdinal(a.Key, b.Key));
            return string.Join(',', sorted.Select(t =>
                $"{LabelName(t.Key)}=\"{EscapeLabelValue(Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "")}\""));
        }

        public void Write(StringBuilder text)
        {
            var type = _kind switch { Kind.Counter => "counter", Kind.Gauge => "gauge", _ => "histogram" };
            text.Append("# HELP ").Append(Name).Append(' ').Append(EscapeHelp(_help)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(' ').Append(type).Append('\n');
            foreach (var series in _series.Values.OrderBy(s => s.Labels, StringComparer.Ordinal))
            {
                if (_kind != Kind.Histogram)
                {
                    Sample(text, Name, series.Labels, series.Value);
                    continue;
                }
                var (counts, sum) = series.Snapshot();
                long cumulative = 0;
                for (var i = 0; i < _bounds.Length; i++)
                {
                    cumulative += counts[i];
                    Sample(text, Name + "_bucket", Join(series.Labels, $"le=\"{FormatValue(_bounds[i])}\""), cumulative);
                }
                cumulative += counts[^1];
                Sample(text, Name + "_bucket", Join(series.Labels, "le=\"+Inf\""), cumulative);
                Sample(text, Name + "_sum", series.Labels, sum);
                Sample(text, Name + "_count", series.Labels, cumulative);
            }
        }

        private static string Join(string labels, string label) => labels.Length == 0 ? label : labels + "," + label;

        private static void Sample(StringBuilder text, string name, string labels, double value)
        {
            text.Append(name);
            if (labels.Length > 0)
                text.Append('{').Append(labels).Append('}');
            text.Append(' ').Append(FormatValue(value)).Append('\n');
        }
    }

    /// <summary>
    /// A tag set as a dictionary key without allocating for up to three tags (sorted by name, so the order they are
    /// passed in does not matter); larger sets fall back to their rendered text.
    /// </summary>
    private readonly record struct SeriesKey(string? N0, object? V0, string? N1, object? V1, string? N2, object? V2)
    {
        public static SeriesKey Of(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            switch (tags.Length)
            {
                case 0:
                    return default;
                case 1:
                    return new SeriesKey(tags[0].Key, tags[0].Value, null, null, null, null);
                case 2:
                {
                    var (a, b) = Ordered(tags[0], tags[1]);
                    return new SeriesKey(a.Key, a.Value, b.Key, b.Value, null, null);
                }
                case 3:
                {
                    var (a, b) = Ordered(tags[0], tags[1]);
                    var (b2, c) = Ordered(b, tags[2]);
                    var (a2, b3) = Ordered(a, b2);
                    return new SeriesKey(a2.Key, a2.Value, b3.Key, b3.Value, c.Key, c.Value);
                }
                default:
                    return new SeriesKey(Rendered(tags), null, null, null, null, null);
            }
        }

        private static (KeyValuePair<string, object?>, KeyValuePair<string, object?>) Ordered(KeyValuePair<string, object?> x, KeyValuePair<string, object?> y) =>
            string.CompareOrdinal(x.Key, y.Key) <= 0 ? (x, y) : (y, x);

        private static string Rendered(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var sorted = tags.ToArray();
            Array.Sort(sorted, (a, b) => string.CompareOrdinal(a.Key, b.Key));
            return string.Join('\u0001', sorted.Select(t => $"{t.Key}\u0002{t.Value}"));
        }
    }

    /// <summary>One series: a value, or a histogram's per-bucket counts (the last one above every bound) and sum.</summary>
    private sealed class Series(string labels, int bounds)
    {
        private readonly long[] _counts = new long[bounds + 1];
        private double _value;

        public string Labels { get; } = labels;

        public double Value => Volatile.Read(ref _value);

        public void Set(double value) => Volatile.Write(ref _value, value);

        public void Add(double value)
        {
            double seen, next;
            do
            {
                seen = Volatile.Read(ref _value);
                next = seen + value;
            }
            while (Interlocked.CompareExchange(ref _value, next, seen) != seen);
        }

        public void Observe(double value, double[] bounds)
        {
            var i = 0;
            while (i < bounds.Length && value > bounds[i])
                i++;
            Interlocked.Increment(ref _counts[i]);
            Add(value);
        }

        public (long[] Counts, double Sum) Snapshot()
        {
            var counts = new long[_counts.Length];
            for (var i = 0; i < counts.Length; i++)
                counts[i] = Interlocked.Read(ref _counts[i]);
            return (counts, Value);
        }
    }
}
