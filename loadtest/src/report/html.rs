//! The self-contained HTML report: key figures, per-route table, errors,
//! and inline SVG plots of latency, throughput, connections and brain
//! RSS/CPU over time. No JavaScript, no external resources.

use std::fmt::Write as _;

use super::svg::{escape, line_chart, Line};
use super::Summary;
use crate::metrics::series::Point;
use crate::metrics::Percentiles;

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;max-width:1000px;color:#222}\
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}code,pre{background:#f7f7f7;padding:2px 4px}\
pre{padding:10px;overflow:auto;font-size:12px}.muted{color:#666;font-size:13px}";

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn pct_cells(p: Option<&Percentiles>) -> String {
    match p {
        Some(p) if p.count > 0 => {
            format!("{:.2} / {:.2} / {:.2} / {:.2} ms (n={})", p.p50, p.p95, p.p99, p.max, p.count)
        }
        _ => "–".to_owned(),
    }
}

/// Where each phase starts, for the dashed markers.
fn phase_marks(points: &[Point]) -> Vec<(f64, String)> {
    let mut marks: Vec<(f64, String)> = Vec::new();
    for p in points {
        if marks.last().is_none_or(|(_, n)| n != &p.phase) {
            // A point covers the second before its timestamp.
            marks.push(((p.t_s - 1.0).max(0.0), p.phase.clone()));
        }
    }
    marks
}

fn col(points: &[Point], f: impl Fn(&Point) -> f64) -> Vec<(f64, f64)> {
    points.iter().map(|p| (p.t_s, f(p))).collect()
}

fn figures(s: &Summary) -> String {
    let mut rows = vec![
        ("connections held (max)", s.connections.to_string()),
        ("handshakes/s (connect storm)", format!("{:.1}", s.handshakes_per_s)),
        ("frames verified/s", fmt_opt(s.frames_verified_per_s, 1)),
        ("invalid frames rejected (4403)/s", fmt_opt(s.frames_rejected_per_s, 3)),
        ("events committed/s (acks)", fmt_opt(s.events_committed_per_s, 1)),
        ("ingest lag p50/p95/p99/max", pct_cells(s.lag_ms.as_ref())),
        ("command round trip p50/p95/p99/max", pct_cells(s.cmd_rtt_ms.as_ref())),
        ("brain RSS per connection", fmt_opt(s.rss_bytes_per_conn, 0) + " bytes"),
    ];
    if let Some(b) = &s.brain {
        rows.push((
            "brain RSS peak / last",
            format!("{:.1} / {:.1} MiB", mib(b.rss_bytes_peak), mib(b.rss_bytes_last)),
        ));
        rows.push((
            "brain CPU mean / max",
            format!("{:.0} % / {:.0} % of one core", b.cpu_percent_mean, b.cpu_percent_max),
        ));
    }
    let mut out = String::from("<table><tr><th>figure</th><th>value</th></tr>");
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(&v));
    }
    out.push_str("</table>");
    out
}

fn mib(b: u64) -> f64 {
    b as f64 / 1_048_576.0
}

fn http_table(s: &Summary) -> String {
    if s.http.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>HTTP routes</h2><table><tr><th>route</th><th>count</th><th>req/s</th><th>p50 ms</th>\
         <th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>p99 corrected ms</th></tr>",
    );
    for (route, r) in &s.http {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
            escape(route),
            r.count,
            r.rps,
            r.p50,
            r.p95,
            r.p99,
            r.max,
            fmt_opt(r.p99_corrected, 2)
        );
    }
    out.push_str("</table>");
    out
}

fn errors_table(s: &Summary) -> String {
    let mut out = String::from("<h2>Errors by kind</h2>");
    if s.errors.is_empty() {
        out.push_str("<p>none</p>");
        return out;
    }
    out.push_str("<table><tr><th>kind</th><th>count</th></tr>");
    for (k, v) in &s.errors {
        let _ = write!(out, "<tr><td>{}</td><td>{v}</td></tr>", escape(k));
    }
    out.push_str("</table>");
    out
}

pub fn render(s: &Summary, points: &[Point]) -> String {
    let marks = phase_marks(points);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>palisade-loadtest {sc} vs {tg}</title>\
         <style>{CSS}</style></head><body><h1>{sc} — {tg}</h1>\
         <p class=\"muted\">{url} · started {st} · {dur:.1} s · {cpu} ({n} cores, {mem:.1} GiB, kernel {k}, load average {la})</p>\
         <p class=\"muted\">command: <code>{cmd}</code></p>",
        sc = escape(&s.scenario),
        tg = escape(&s.target),
        url = escape(&s.url),
        st = escape(&s.started_at),
        dur = s.duration_s,
        cpu = escape(&s.machine.cpu_model),
        n = s.machine.nproc,
        mem = s.machine.mem_total_bytes as f64 / 1_073_741_824.0,
        k = escape(&s.machine.kernel),
        la = escape(&s.machine.loadavg),
        cmd = escape(&s.command),
    );
    h.push_str("<h2>Key figures</h2>");
    h.push_str(&figures(s));
    h.push_str(&http_table(s));
    h.push_str(&errors_table(s));
    h.push_str("<h2>Over time</h2>");
    let latency = [
        Line { name: "p50", color: "#1f77b4", points: col(points, |p| p.lat_p50_ms) },
        Line { name: "p99", color: "#d62728", points: col(points, |p| p.lat_p99_ms) },
        Line { name: "max", color: "#999999", points: col(points, |p| p.lat_max_ms) },
    ];
    h.push_str(&line_chart("Latency per second (primary metric)", "ms", &latency, &marks));
    let throughput = [
        Line { name: "events committed/s", color: "#2ca02c", points: col(points, |p| p.events_acked_per_s) },
        Line { name: "frames sent/s", color: "#ff7f0e", points: col(points, |p| p.frames_sent_per_s) },
        Line { name: "HTTP req/s", color: "#9467bd", points: col(points, |p| p.http_rps) },
    ];
    h.push_str(&line_chart("Throughput", "per second", &throughput, &marks));
    let conns = [
        Line { name: "connections", color: "#17becf", points: col(points, |p| p.connections as f64) },
        Line { name: "handshakes/s", color: "#8c564b", points: col(points, |p| p.handshakes_per_s) },
    ];
    h.push_str(&line_chart("Agent sessions", "count", &conns, &marks));
    let rss = [Line { name: "brain RSS MiB", color: "#e377c2", points: col(points, |p| mib(p.rss_bytes)) }];
    h.push_str(&line_chart("Brain resident memory", "MiB", &rss, &marks));
    let cpu = [Line { name: "brain CPU %", color: "#7f7f7f", points: col(points, |p| p.cpu_percent) }];
    h.push_str(&line_chart("Brain CPU (100 % = one core)", "%", &cpu, &marks));
    if !s.notes.is_empty() {
        h.push_str("<h2>Notes</h2><ul>");
        for n in &s.notes {
            let _ = write!(h, "<li>{}</li>", escape(n));
        }
        h.push_str("</ul>");
    }
    let details = serde_json::to_string_pretty(s).unwrap_or_default();
    let _ = write!(h, "<h2>Full summary (JSON)</h2><pre>{}</pre></body></html>", escape(&details));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(t: f64, phase: &str) -> Point {
        Point { t_s: t, phase: phase.into(), lat_p99_ms: t, ..Point::default() }
    }

    #[test]
    fn phases_are_marked_where_they_start() {
        let pts = vec![pt(1.0, "connect"), pt(2.0, "connect"), pt(3.0, "steady"), pt(4.0, "max")];
        let m = phase_marks(&pts);
        assert_eq!(m, vec![(0.0, "connect".into()), (2.0, "steady".into()), (3.0, "max".into())]);
    }

    #[test]
    fn report_escapes_and_has_no_scripts() {
        let mut s = Summary::new("agents");
        s.target = "<z4j>".into();
        s.errors.insert("close_4403".into(), 2);
        let html = render(&s, &[pt(1.0, "steady")]);
        assert!(html.contains("&lt;z4j&gt;"));
        assert!(!html.contains("<script"));
        assert!(html.contains("close_4403"));
        assert_eq!(html.matches("<svg").count(), 5);
    }
}
