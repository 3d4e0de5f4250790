//! A hand-written SVG plot: speedup against CPU count, with the measured
//! line, the ideal line (y = x) and the native line, axes, ticks, labels
//! and a legend. No dependencies; the output is plain SVG 1.1.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Canvas width in pixels.
const WIDTH: f64 = 640.0;
/// Canvas height in pixels.
const HEIGHT: f64 = 420.0;
/// Plot area margins: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (64.0, 150.0, 40.0, 56.0);

/// One line on the plot.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    dash: &'a str,
    points: Vec<(f64, f64)>,
}

/// Renders the plot. `measured` and `native` map CPU count to speedup;
/// `cpus` are the CPU counts on the x axis.
pub fn speedup_svg(
    title: &str,
    cpus: &[u32],
    measured: &BTreeMap<u32, f64>,
    native: &BTreeMap<u32, f64>,
) -> String {
    let x_max = f64::from(cpus.iter().copied().max().unwrap_or(1).max(2));
    let finite_max = measured
        .values()
        .chain(native.values())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_max = x_max.max(finite_max).ceil().max(1.0);
    let ideal: Vec<(f64, f64)> = cpus.iter().map(|&c| (f64::from(c), f64::from(c))).collect();
    let series = [
        Series {
            name: "ideal (y = x)",
            color: "#888888",
            dash: "6,4",
            points: ideal,
        },
        Series {
            name: "native (host threads)",
            color: "#2b7bba",
            dash: "",
            points: to_points(native),
        },
        Series {
            name: "measured (guest)",
            color: "#d1495b",
            dash: "",
            points: to_points(measured),
        },
    ];
    let plot = Plot { x_max, y_max };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    plot.axes(&mut s);
    for (i, line) in series.iter().enumerate() {
        plot.polyline(&mut s, line);
        legend(&mut s, i, line);
    }
    s.push_str("</svg>\n");
    s
}

fn to_points(m: &BTreeMap<u32, f64>) -> Vec<(f64, f64)> {
    m.iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(&c, &v)| (f64::from(c), v))
        .collect()
}

/// Data-to-pixel mapping.
struct Plot {
    x_max: f64,
    y_max: f64,
}

impl Plot {
    fn px(&self, x: f64) -> f64 {
        MARGIN.0 + x / self.x_max * (WIDTH - MARGIN.0 - MARGIN.1)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - MARGIN.3 - y / self.y_max * (HEIGHT - MARGIN.2 - MARGIN.3)
    }

    fn axes(&self, s: &mut String) {
        let (x0, y0, x1, y1) = (
            self.px(0.0),
            self.py(0.0),
            self.px(self.x_max),
            self.py(self.y_max),
        );
        for i in 0..=(self.x_max as u32) {
            let x = self.px(f64::from(i));
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="black"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{i}</text>"#,
                y0 + 5.0,
                y0 + 18.0
            );
        }
        let step = if self.y_max > 10.0 {
            (self.y_max / 10.0).ceil()
        } else {
            1.0
        };
        let mut v = 0.0;
        while v <= self.y_max + 1e-9 {
            let y = self.py(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##,
                x0 - 6.0,
                y + 4.0
            );
            v += step;
        }
        // The axes go over the grid.
        let _ = writeln!(
            s,
            r#"<g stroke="black" stroke-width="1"><line x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y0:.1}"/><line x1="{x0:.1}" y1="{y0:.1}" x2="{x0:.1}" y2="{y1:.1}"/></g>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">CPUs</text>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 16.0
        );
        let _ = writeln!(
            s,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">speedup (1-CPU time / N-CPU time)</text>"#,
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0
        );
    }

    fn polyline(&self, s: &mut String, line: &Series) {
        let pts: Vec<String> = line
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let dash = if line.dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{}""#, line.dash)
        };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"#,
            line.color,
            pts.join(" "),
            escape(line.name)
        );
        for &(x, y) in &line.points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{}: {x} CPUs, {y:.2}x</title></circle>"#,
                self.px(x),
                self.py(y),
                line.color,
                escape(line.name)
            );
        }
    }
}

fn legend(s: &mut String, i: usize, line: &Series) {
    let x = WIDTH - MARGIN.1 + 14.0;
    let y = MARGIN.2 + 20.0 + 20.0 * i as f64;
    let dash = if line.dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{}""#, line.dash)
    };
    let _ = writeln!(
        s,
        r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
        x + 22.0,
        line.color,
        x + 28.0,
        y + 4.0,
        escape(line.name)
    );
}

/// Escapes text for XML.
fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_has_three_lines_and_parses() {
        let m: BTreeMap<u32, f64> = [(1, 1.0), (2, 1.9), (4, 2.0)].into();
        let n: BTreeMap<u32, f64> = [(1, 1.0), (2, 1.98), (4, 2.01)].into();
        let svg = speedup_svg("smp-process-scale <kvm>", &[1, 2, 4], &m, &n);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("ideal") && svg.contains("native") && svg.contains("measured"));
        assert!(svg.contains("&lt;kvm&gt;"));
        // Balanced tags: every opened element is closed or self-closing.
        for tag in ["svg", "polyline", "text", "g", "circle", "title"] {
            let open =
                svg.matches(&format!("<{tag} ")).count() + svg.matches(&format!("<{tag}>")).count();
            let self_closed = svg
                .split(&format!("<{tag}"))
                .skip(1)
                .filter(|rest| rest.split('>').next().is_some_and(|t| t.ends_with('/')))
                .count();
            assert_eq!(
                open,
                svg.matches(&format!("</{tag}>")).count() + self_closed,
                "{tag}"
            );
        }
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn empty_data_still_draws() {
        let svg = speedup_svg("x", &[1], &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(svg.matches("<polyline").count(), 3);
    }
}
