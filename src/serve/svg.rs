//! Charts as inline SVG, drawn on the server: no script, no build step.
//! Every mark carries a `<title>`, so a browser shows its label and value
//! on hover; the pages print the same numbers in a table below.

use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;

/// Escapes text for HTML and SVG.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number as people read it: thousands grouped, two decimals at most.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        let digits = format!("{}", value.abs() as u64);
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        return if value < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        };
    }
    format!("{value:.2}")
}

/// An axis label short enough to sit under a bar: a date as MM-DD, a
/// time as HH:MM.
fn short(label: &str) -> &str {
    let b = label.as_bytes();
    let date = |at: usize| b.len() >= at + 10 && b[at + 4] == b'-' && b[at + 7] == b'-';
    if date(0) && b.len() >= 16 && (b[10] == b'T' || b[10] == b' ') {
        &label[11..16]
    } else if date(0) && b.len() == 10 {
        &label[5..]
    } else {
        label
    }
}

/// A label under the x axis at `x`.
fn x_label(out: &mut String, x: f64, label: &str) {
    let _ = write!(
        out,
        r#"<text x="{x:.1}" y="{y}" class="tick">{l}</text>"#,
        y = HEIGHT - 8.0,
        l = esc(short(label)),
    );
}

fn open(id: &str, height: f64) -> String {
    format!(
        r#"<svg class="chart" id="{}" viewBox="0 0 {WIDTH} {height}" role="img" xmlns="http://www.w3.org/2000/svg">"#,
        esc(id)
    )
}

fn axis(out: &mut String, max: f64, height: f64) {
    let base = height - BOTTOM;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="#888"/><text x="{x}" y="{top}" class="tick" text-anchor="end">{label}</text><text x="{x}" y="{base}" class="tick" text-anchor="end">0</text>"##,
        x = LEFT - 4.0,
        top = TOP + 8.0,
        label = esc(&number(max)),
    );
}

/// Vertical bars, one per `(label, value)`, labels under some of them.
pub fn bars(id: &str, points: &[(String, f64)], unit: &str) -> String {
    let mut out = open(id, HEIGHT);
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    axis(&mut out, max, HEIGHT);
    let span = (WIDTH - LEFT) / points.len().max(1) as f64;
    let every = points.len().div_ceil(12).max(1);
    for (i, (label, value)) in points.iter().enumerate() {
        let h = (HEIGHT - BOTTOM - TOP) * value / max;
        let x = LEFT + i as f64 * span;
        let _ = write!(
            out,
            r#"<rect class="mark" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" data-label="{l}" data-value="{value}"><title>{l}: {v} {u}</title></rect>"#,
            y = HEIGHT - BOTTOM - h,
            w = (span * 0.8).max(1.0),
            l = esc(label),
            v = esc(&number(*value)),
            u = esc(unit),
        );
        if i % every == 0 {
            x_label(&mut out, x, label);
        }
    }
    out.push_str("</svg>");
    out
}

/// Horizontal bars, labels at the left: for top-N lists.
pub fn ranking(id: &str, points: &[(String, f64)], unit: &str) -> String {
    let row = 22.0;
    let height = TOP + row * points.len() as f64 + 4.0;
    let mut out = open(id, height);
    let label_width = 220.0;
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    for (i, (label, value)) in points.iter().enumerate() {
        let y = TOP + i as f64 * row;
        let w = (WIDTH - label_width - 80.0) * value / max;
        let _ = write!(
            out,
            r#"<text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{l}</text><rect class="mark" x="{label_width}" y="{y:.1}" width="{w:.1}" height="{h}" data-label="{l}" data-value="{value}"><title>{l}: {v} {u}</title></rect><text x="{vx:.1}" y="{ty:.1}" class="tick">{v}</text>"#,
            tx = label_width - 6.0,
            ty = y + 14.0,
            h = row - 6.0,
            vx = label_width + w + 4.0,
            l = esc(label),
            v = esc(&number(*value)),
            u = esc(unit),
        );
    }
    out.push_str("</svg>");
    out
}

/// A line through `points` in order, a dot on each for hovering.
pub fn line(id: &str, points: &[(String, f64)], unit: &str) -> String {
    let mut out = open(id, HEIGHT);
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    axis(&mut out, max, HEIGHT);
    let step = (WIDTH - LEFT) / (points.len().max(2) - 1) as f64;
    let xy = |i: usize, v: f64| {
        (
            LEFT + i as f64 * step,
            HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * v / max,
        )
    };
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = xy(i, p.1);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(
        out,
        r#"<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/>"#,
        path.join(" ")
    );
    let every = (points.len() / 8).max(1);
    for (i, (label, value)) in points.iter().enumerate() {
        let (x, y) = xy(i, *value);
        let _ = write!(
            out,
            r#"<circle class="mark" cx="{x:.1}" cy="{y:.1}" r="2.5" data-label="{l}" data-value="{value}"><title>{l}: {v} {u}</title></circle>"#,
            l = esc(label),
            v = esc(&number(*value)),
            u = esc(unit),
        );
        if i % every == 0 {
            x_label(&mut out, x, label);
        }
    }
    out.push_str("</svg>");
    out
}

/// A grid of cells shaded by value: rows by columns (day of week by hour).
pub fn heatmap(
    id: &str,
    rows: &[String],
    columns: usize,
    cells: &[(usize, usize, f64)],
    unit: &str,
) -> String {
    let cell_w = (WIDTH - LEFT) / columns.max(1) as f64;
    let cell_h = 20.0;
    let height = TOP + cell_h * rows.len() as f64 + BOTTOM;
    let mut out = open(id, height);
    let max = cells.iter().map(|c| c.2).fold(0.0, f64::max).max(1e-9);
    for (r, name) in rows.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{x}" y="{y:.1}" class="tick" text-anchor="end">{n}</text>"#,
            x = LEFT - 4.0,
            y = TOP + r as f64 * cell_h + 14.0,
            n = esc(name),
        );
    }
    for c in (0..columns).step_by(3) {
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y:.1}" class="tick">{c}</text>"#,
            x = LEFT + c as f64 * cell_w,
            y = height - 8.0,
        );
    }
    for &(r, c, value) in cells {
        let label = format!("{} {c:02}:00", rows.get(r).map_or("?", String::as_str));
        let _ = write!(
            out,
            r#"<rect class="mark" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill-opacity="{o:.3}" data-label="{l}" data-value="{value}"><title>{l}: {v} {u}</title></rect>"#,
            x = LEFT + c as f64 * cell_w,
            y = TOP + r as f64 * cell_h,
            w = cell_w - 1.0,
            h = cell_h - 1.0,
            o = 0.08 + 0.92 * value / max,
            l = esc(&label),
            v = esc(&number(value)),
            u = esc(unit),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(-1000.0), "-1,000");
        assert_eq!(number(12.345), "12.35");
        assert_eq!(number(0.0), "0");
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short("2024-03-05"), "03-05");
        assert_eq!(short("2024-03-05T08:15:00"), "08:15");
        assert_eq!(short("Midtown"), "Midtown");
    }

    #[test]
    fn text_is_escaped_in_marks() {
        let svg = bars("b", &[("<script>".into(), 2.0)], "trips");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
        assert_eq!(svg.matches("class=\"mark\"").count(), 1);
    }
}
