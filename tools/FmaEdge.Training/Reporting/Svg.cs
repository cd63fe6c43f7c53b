using System.Globalization;
using System.Net;
using System.Text;

namespace FmaEdge.Training.Reporting;

/// <summary>One line of a chart: a name, a colour and (x, y) points.</summary>
internal sealed record ChartSeries(string Name, string Color, IReadOnlyList<(double X, double Y)> Points, bool Dashed = false);

/// <summary>Inline SVG charts for the self-contained report (no scripts, no external assets). Stateless.</summary>
internal static class Svg
{
    public static readonly string[] Palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

    public static string F(double v, string format = "0.###") => v.ToString(format, CultureInfo.InvariantCulture);

    public static string Esc(string? s) => WebUtility.HtmlEncode(s ?? "");

    /// <summary>A line chart with axes, ticks, a legend and a hover title on each point.</summary>
    public static string LineChart(string title, string xLabel, IReadOnlyList<ChartSeries> series, bool percent = false,
        double? yMin = null, double? yMax = null, bool logY = false)
    {
        const int W = 460, H = 280, L = 58, R = 16, T = 34, B = 44;
        var pts = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.Y) && (!logY || p.Y > 0)).ToList();
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{Esc(title)}\">");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{L}\" y=\"20\" class=\"ct\">{Esc(title)}</text>");
        if (pts.Count == 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{W / 2}\" y=\"{H / 2}\" text-anchor=\"middle\" class=\"muted\">no data</text></svg>");
            return sb.ToString();
        }

        double Ty(double y) => logY ? Math.Log10(y) : y;
        var x0 = pts.Min(p => p.X);
        var x1 = pts.Max(p => p.X);
        if (x1 <= x0)
        {
            x1 = x0 + 1;
        }

        var y0 = yMin ?? pts.Min(p => Ty(p.Y));
        var y1 = yMax ?? pts.Max(p => Ty(p.Y));
        if (y1 - y0 < 1e-12)
        {
            y0 -= y0 == 0 ? 0 : Math.Abs(y0) * 0.1 + 1e-9;
            y1 += Math.Abs(y1) * 0.1 + 1e-9;
        }

        // Round the axis out to "nice" steps (1, 2, 2.5, 5 x 10^k) so tick labels read cleanly; never below 0 for
        // non-negative data and never above 100 % for rates.
        var tickStep = NiceStep((y1 - y0) / 4);
        var nonNegative = pts.All(p => Ty(p.Y) >= 0);
        y0 = Math.Floor(y0 / tickStep + 1e-9) * tickStep;
        y1 = Math.Ceiling(y1 / tickStep - 1e-9) * tickStep;
        if (nonNegative)
        {
            y0 = Math.Max(0, y0);
        }

        if (percent)
        {
            y1 = Math.Min(1, y1);
        }

        var ticks = Math.Max(1, (int)Math.Round((y1 - y0) / tickStep));

        double Px(double x) => L + (x - x0) / (x1 - x0) * (W - L - R);
        double Py(double y) => T + (1 - (Ty(y) - y0) / (y1 - y0)) * (H - T - B);

        // Grid and y ticks.
        for (var i = 0; i <= ticks; i++)
        {
            var v = y0 + (y1 - y0) * i / ticks;
            var py = T + (1 - (double)i / ticks) * (H - T - B);
            var label = logY ? FormatNumber(Math.Pow(10, v)) : percent ? F(v * 100, "0.#") + "%" : FormatNumber(v);
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{L}\" x2=\"{W - R}\" y1=\"{F(py)}\" y2=\"{F(py)}\" class=\"grid\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{L - 6}\" y=\"{F(py + 4)}\" text-anchor=\"end\" class=\"tick\">{label}</text>");
        }

        // x ticks at integers (epochs), thinned to at most ~10.
        var step = Math.Max(1, (int)Math.Ceiling((x1 - x0) / 10));
        for (var x = Math.Ceiling(x0); x <= x1 + 1e-9; x += step)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(Px(x))}\" y=\"{H - B + 16}\" text-anchor=\"middle\" class=\"tick\">{F(x)}</text>");
        }

        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{L}\" x2=\"{W - R}\" y1=\"{H - B}\" y2=\"{H - B}\" class=\"axis\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{L}\" x2=\"{L}\" y1=\"{T}\" y2=\"{H - B}\" class=\"axis\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{(L + W - R) / 2}\" y=\"{H - 8}\" text-anchor=\"middle\" class=\"tick\">{Esc(xLabel)}</text>");

        var legendX = (double)L + 8;
        foreach (var s in series)
        {
            var p = s.Points.Where(q => double.IsFinite(q.Y) && (!logY || q.Y > 0)).ToList();
            if (p.Count == 0)
            {
                continue;
            }

            var dash = s.Dashed ? " stroke-dasharray=\"5 4\"" : "";
            sb.Append(CultureInfo.InvariantCulture,
                $"<polyline fill=\"none\" stroke=\"{s.Color}\" stroke-width=\"2\"{dash} points=\"{string.Join(' ', p.Select(q => F(Px(q.X), "0.#") + "," + F(Py(q.Y), "0.#")))}\"/>");
            if (p.Count <= 60)
            {
                foreach (var q in p)
                {
                    var v = percent ? F(q.Y * 100, "0.##") + "%" : FormatNumber(q.Y);
                    sb.Append(CultureInfo.InvariantCulture,
                        $"<circle cx=\"{F(Px(q.X), "0.#")}\" cy=\"{F(Py(q.Y), "0.#")}\" r=\"2.6\" fill=\"{s.Color}\"><title>{Esc(s.Name)} @ {F(q.X)}: {v}</title></circle>");
                }
            }

            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(legendX)}\" y=\"{T - 4}\" width=\"12\" height=\"3\" fill=\"{s.Color}\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(legendX + 16)}\" y=\"{T}\" class=\"legend\">{Esc(s.Name)}</text>");
            legendX += 26 + (s.Name.Length * 6.2);
        }

        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>A confusion-matrix heatmap: rows are true classes, columns predictions, shaded by the share of the
    /// row; the diagonal in blue, errors in red, counts printed in the cells.</summary>
    public static string Heatmap(string title, IReadOnlyList<string> labels, int[][] counts)
    {
        var n = labels.Count;
        var cell = Math.Clamp(560 / Math.Max(1, n), 16, 44);
        var maxLabel = labels.Count == 0 ? 4 : labels.Max(l => l.Length);
        var left = Math.Clamp(maxLabel * 6.6 + 12, 60, 220);
        var top = Math.Clamp(maxLabel * 4.9 + 20, 40, 170);
        var w = Math.Max(left + n * cell + 70, left + 400);
        var h = top + n * cell + 34;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg class=\"heat\" viewBox=\"0 0 {F(w)} {F(h)}\" width=\"{F(w)}\" role=\"img\" aria-label=\"{Esc(title)}\">");
        for (var r = 0; r < n; r++)
        {
            var rowSum = counts[r].Sum();
            var y = top + r * cell;
            sb.Append(CultureInfo.InvariantCulture,
                $"<text x=\"{F(left - 6)}\" y=\"{F(y + cell / 2.0 + 4)}\" text-anchor=\"end\" class=\"tick\">{Esc(labels[r])}</text>");
            for (var c = 0; c < n; c++)
            {
                var x = left + c * cell;
                var count = counts[r][c];
                var share = rowSum == 0 ? 0 : (double)count / rowSum;
                var fill = count == 0 ? "#f8fafc" : r == c ? Shade(share, (37, 99, 235)) : Shade(Math.Min(1, share * 2.5), (220, 38, 38));
                sb.Append(CultureInfo.InvariantCulture,
                    $"<rect x=\"{F(x)}\" y=\"{F(y)}\" width=\"{cell - 1}\" height=\"{cell - 1}\" fill=\"{fill}\"><title>true {Esc(labels[r])} → predicted {Esc(labels[c])}: {count} ({F(share * 100, "0.#")}% of the row)</title></rect>");
                if (count > 0 && cell >= 18)
                {
                    var dark = r == c ? share > 0.5 : share * 2.5 > 0.6;
                    sb.Append(CultureInfo.InvariantCulture,
                        $"<text x=\"{F(x + (cell - 1) / 2.0)}\" y=\"{F(y + cell / 2.0 + 3.5)}\" text-anchor=\"middle\" class=\"cell{(dark ? " inv" : "")}\">{count}</text>");
                }
            }

            sb.Append(CultureInfo.InvariantCulture,
                $"<text x=\"{F(left + n * cell + 6)}\" y=\"{F(y + cell / 2.0 + 4)}\" class=\"tick\">{rowSum}</text>");
        }

        for (var c = 0; c < n; c++)
        {
            var x = left + c * cell + cell / 2.0;
            sb.Append(CultureInfo.InvariantCulture,
                $"<text transform=\"translate({F(x + 3)},{F(top - 6)}) rotate(-55)\" class=\"tick\">{Esc(labels[c])}</text>");
        }

        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left + n * cell + 6)}\" y=\"{F(top - 6)}\" class=\"tick\">n</text>");
        sb.Append(CultureInfo.InvariantCulture,
            $"<text x=\"{F(left)}\" y=\"{F(h - 8)}\" class=\"tick\">columns: predicted class · rows: true class · shade: share of the row</text>");
        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>A horizontal bar (0..1) for tables.</summary>
    public static string Bar(double v, string color = "#2563eb") =>
        $"<span class=\"bar\"><span style=\"width:{F(Math.Clamp(v, 0, 1) * 100, "0.#")}%;background:{color}\"></span></span>";

    private static double NiceStep(double raw)
    {
        if (!(raw > 0) || !double.IsFinite(raw))
        {
            return 1;
        }

        var mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        var f = raw / mag;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
    }

    private static string Shade(double t, (int R, int G, int B) c)
    {
        t = Math.Clamp(0.12 + 0.88 * t, 0, 1);
        int Mix(int v) => (int)Math.Round(255 + (v - 255) * t);
        return $"#{Mix(c.R):x2}{Mix(c.G):x2}{Mix(c.B):x2}";
    }

    private static string FormatNumber(double v)
    {
        var a = Math.Abs(v);
        return a == 0 ? "0" : a >= 1000 ? F(v, "0") : a >= 10 ? F(v, "0.#") : a >= 0.01 ? F(v, "0.###") : v.ToString("0.0e0", CultureInfo.InvariantCulture);
    }
}
