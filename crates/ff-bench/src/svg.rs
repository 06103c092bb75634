//! A hand-written SVG chart of latency distributions: one percentile curve
//! per series, the percentile on the classic HDR axis (`1 / (1 - q)`, log:
//! 50 %, 90 %, 99 %, 99.9 %) and the latency on a log axis in milliseconds.
//! Curves start at the median: below it, millisecond stamps are often 0,
//! which a log axis cannot show.

use std::fmt::Write as _;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 330.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 56.0;
/// Latencies below this plot at it (a log axis has no zero).
const FLOOR_MS: f64 = 0.01;
/// Distinguishable on white, in order of use.
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

/// One curve: a label and `[quantile, ms]` points.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<[f64; 2]>,
}

/// Renders `series` under `title` as a standalone SVG document.
pub fn percentile_chart(title: &str, series: &[Series]) -> String {
    let x_of = |q: f64| (1.0 / (1.0 - q.clamp(0.5, 0.99999))).log10();
    let min_x = x_of(0.5);
    let max_x = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| x_of(p[0])))
        .fold(3.0f64, f64::max);
    // 1 / (1 - 0.9999) is a hair over 10^4 in floating point: not a decade more.
    let max_x = (max_x - 1e-6).ceil();
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[1].max(FLOOR_MS)));
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi { (FLOOR_MS, 1.0) } else { (lo, hi) };
    let (y_min, y_max) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| LEFT + (x - min_x) / (max_x - min_x) * plot_w;
    let py = |ms: f64| TOP + (y_max - ms.max(FLOOR_MS).log10()) / (y_max - y_min) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );

    // Grid and axes.
    for k in 0..=max_x as u32 {
        let (x, label) = match k {
            0 => (px(min_x), "50%".to_owned()),
            _ => (
                px(f64::from(k)),
                format!("{}%", 100.0 - 100.0 / 10f64.powi(k as i32)),
            ),
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e0e0e0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    for e in y_min as i32..=y_max as i32 {
        let ms = 10f64.powi(e);
        let y = py(ms);
        let label = if ms >= 1.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{ms} ms")
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">latency (log scale)</text>"#,
        TOP + plot_h / 2.0
    );

    // Curves and legend.
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(x_of(p[0])), py(p[1])))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let y = TOP + 8.0 + i as f64 * 20.0;
        let x = LEFT + plot_w + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 22.0,
            x + 28.0,
            y + 4.0,
            escape(&s.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_with_a_curve_per_series() {
        let series = [
            Series {
                label: "latency <fixed-rate>".into(),
                points: vec![[0.0, 0.5], [0.9, 2.0], [0.999, 40.0]],
            },
            Series {
                label: "chain".into(),
                points: vec![[0.0, 0.0], [0.99, 3.0]],
            },
        ];
        let svg = percentile_chart("Latency & lag", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("Latency &amp; lag") && svg.contains("&lt;fixed-rate&gt;"));
        assert!(svg.contains(">99.9%<") && !svg.contains(">99.99%<"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn the_axis_ends_at_the_last_decade_reached() {
        let series = [Series {
            label: "long".into(),
            points: vec![[0.5, 1.0], [0.9999, 9.0]],
        }];
        let svg = percentile_chart("t", &series);
        assert!(svg.contains(">99.99%<") && !svg.contains(">99.999%<"));
    }

    #[test]
    fn no_series_still_draws_axes() {
        let svg = percentile_chart("empty", &[]);
        assert!(svg.contains("percentile") && !svg.contains("NaN"));
    }
}
