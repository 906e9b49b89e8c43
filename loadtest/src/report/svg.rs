//! Minimal inline SVG line charts for the HTML report: no scripts, no
//! external resources, so the report opens anywhere and under any CSP.

use std::fmt::Write as _;

pub struct Line<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 34.0;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest 1/2/5 × 10^k at or above `v` (axis top).
pub fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * base >= v * (1.0 - 1e-12) {
            return m * base;
        }
    }
    10.0 * base
}

/// Short axis labels: 1200 → "1.2k", 0.25 → "0.25".
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A chart of `lines` over time, with dashed markers where `phases` begin.
pub fn line_chart(title: &str, y_label: &str, lines: &[Line<'_>], phases: &[(f64, String)]) -> String {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let x_max = nice_max(xs.fold(0.0, f64::max));
    let y_max = nice_max(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0, f64::max));
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * pw;
    let sy = |y: f64| TOP + ph - (y / y_max).clamp(0.0, 1.0) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}"><text x="{LEFT}" y="18" font-size="14" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
    for i in 0..=4 {
        let y = y_max * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end">{label}</text>"##,
            x2 = W - RIGHT,
            py = sy(y),
            tx = LEFT - 6.0,
            ty = sy(y) + 4.0,
            label = short(y)
        );
        let x = x_max * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r#"<text x="{px:.1}" y="{ty}" font-size="11" text-anchor="middle">{label}s</text>"#,
            px = sx(x),
            ty = H - BOTTOM + 16.0,
            label = short(x)
        );
    }
    let _ = write!(
        s,
        r#"<text x="14" y="{cy}" font-size="11" transform="rotate(-90 14 {cy})" text-anchor="middle">{}</text>"#,
        escape(y_label),
        cy = TOP + ph / 2.0
    );
    for (i, (t, name)) in phases.iter().enumerate() {
        let px = sx(*t);
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{yb}" stroke="#999" stroke-dasharray="4 3"/><text x="{tx:.1}" y="{ty}" font-size="10" fill="#666">{n}</text>"##,
            yb = TOP + ph,
            tx = px + 3.0,
            // Staggered, so phases that start close together stay readable.
            ty = TOP + 10.0 + 11.0 * (i % 3) as f64,
            n = escape(name)
        );
    }
    let mut any = false;
    for (i, line) in lines.iter().enumerate() {
        if line.points.is_empty() {
            continue;
        }
        any = true;
        let pts: Vec<String> = line.points.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{p}"/><text x="{lx}" y="{ly}" font-size="11" fill="{c}">{n}</text>"#,
            c = escape(line.color),
            p = pts.join(" "),
            lx = 420.0 + 110.0 * i as f64,
            ly = 18.0,
            n = escape(line.name)
        );
    }
    if !any {
        let _ =
            write!(s, r##"<text x="{}" y="{}" font-size="12" fill="#888">no data</text>"##, LEFT + 10.0, TOP + 30.0);
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis_tops() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(1.01), 2.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(7.5), 10.0);
        assert_eq!(nice_max(420.0), 500.0);
        assert_eq!(nice_max(0.03), 0.05);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(25_000.0), "25k");
        assert_eq!(short(3_000_000.0), "3.0M");
    }

    #[test]
    fn chart_is_self_contained_svg() {
        let l = Line { name: "p99 <ms>", color: "#c00", points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 1.5)] };
        let svg = line_chart("Lag & more", "ms", &[l], &[(1.0, "steady".into())]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Lag &amp; more") && svg.contains("p99 &lt;ms&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(
            !svg.contains("<script") && !svg.contains("http://")
                || svg.contains("xmlns=\"http://www.w3.org/2000/svg\"")
        );
        let empty = line_chart("x", "y", &[], &[]);
        assert!(empty.contains("no data"));
    }
}
