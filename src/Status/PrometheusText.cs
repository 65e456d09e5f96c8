using System.Globalization;
using System.Text;

namespace CallRouter.Status;

/// <summary>One sample of a Prometheus text exposition: name, labels, value.</summary>
public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string Label(string name) => Labels.TryGetValue(name, out var value) ? value : "";

    /// <summary>
    /// The series as PromQL names it, e.g. <c>callrouter_router_wins_total{app="sales"}</c>: labels sorted by name with
    /// <c>le</c> last, values escaped; the bare name when there are no labels.
    /// </summary>
    public string Series => Labels.Count == 0 ? Name : Name + "{" + string.Join(',', Labels
        .OrderBy(l => l.Key == "le").ThenBy(l => l.Key, StringComparer.Ordinal)
        .Select(l => $"{l.Key}=\"{l.Value.Replace("\\", @"\\").Replace("\"", "\\\"").Replace("\n", @"\n")}\"")) + "}";
}

/// <summary>
/// Reads the text exposition format 0.0.4 (comments skipped, label values unescaped, an optional timestamp ignored).
/// The one parser of /metrics in this repository: the status command and the tests both read through it.
/// </summary>
public static class PrometheusText
{
    public static List<Sample> Parse(string text)
    {
        var samples = new List<Sample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line.StartsWith('#'))
                continue;
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            var brace = line.IndexOf('{');
            var space = line.IndexOf(' ');
            string name;
            int rest;
            if (brace >= 0 && (space < 0 || brace < space))
            {
                name = line[..brace];
                rest = ParseLabels(line, brace + 1, labels);
            }
            else
            {
                if (space < 0)
                    throw new FormatException($"no value in metrics line '{line}'");
                name = line[..space];
                rest = space;
            }
            var valueText = line[rest..].Trim().Split(' ')[0];
            var value = valueText switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(valueText, CultureInfo.InvariantCulture),
            };
            samples.Add(new Sample(name, labels, value));
        }
        return samples;
    }

    /// <summary>Reads name="value" pairs up to the closing brace; returns the index after it.</summary>
    private static int ParseLabels(string line, int i, Dictionary<string, string> labels)
    {
        while (i < line.Length && line[i] != '}')
        {
            var equals = line.IndexOf('=', i);
            if (equals < 0 || equals + 1 >= line.Length || line[equals + 1] != '"')
                throw new FormatException($"bad label in metrics line '{line}'");
            var name = line[i..equals].Trim().TrimStart(',').Trim();
            i = equals + 2; // past ="
            var value = new StringBuilder();
            while (i < line.Length && line[i] != '"')
            {
                if (line[i] == '\\' && i + 1 < line.Length)
                {
                    i++;
                    value.Append(line[i] == 'n' ? '\n' : line[i]);
                }
                else
                    value.Append(line[i]);
                i++;
            }
            if (i >= line.Length)
                throw new FormatException($"unterminated label value in metrics line '{line}'");
            labels[name] = value.ToString();
            i++; // past the closing quote
            if (i < line.Length && line[i] == ',')
                i++;
        }
        return i + 1;
    }
}
