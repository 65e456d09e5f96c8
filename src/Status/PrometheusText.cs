using System.Globalization;
using System.Text;

namespace CallRouter.Status;

/// <summary>One sample of a Prometheus text exposition: name, labels, value.</summary>
public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string Label(string name) => Labels.TryGetValue(name, out var value) ? value : "";
}

/// <summary>Reads the text exposition format 0.0.4 (comments skipped, label values unescaped).</summary>
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
            var name = line[i..equals].Trim().TrimStart(',').Trim();
            i = equals + 2; // past ="
            var value = new StringBuilder();
            while (line[i] != '"')
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
            labels[name] = value.ToString();
            i++; // past the closing quote
            if (i < line.Length && line[i] == ',')
                i++;
        }
        return i + 1;
    }
}
