//! Small self-contained SVG charts: the ROC curve on the scored set and
//! validation AvgRec against k.
use std::fmt::Write;

const W: f64 = 360.0;
const H: f64 = 300.0;
const PAD: f64 = 45.0;

struct Panel {
    title: String,
    x_label: String,
    y_label: String,
    x_range: (f64, f64),
    y_range: (f64, f64),
    points: Vec<(f64, f64)>,
    diagonal: bool,
    markers: bool,
}

impl Panel {
    fn map(&self, (x, y): (f64, f64), ox: f64) -> (f64, f64) {
        let fx = (x - self.x_range.0) / (self.x_range.1 - self.x_range.0).max(1e-12);
        let fy = (y - self.y_range.0) / (self.y_range.1 - self.y_range.0).max(1e-12);
        (
            ox + PAD + fx * (W - 2.0 * PAD),
            H - PAD - fy * (H - 2.0 * PAD),
        )
    }

    fn draw(&self, out: &mut String, ox: f64) {
        let (x0, y0) = self.map((self.x_range.0, self.y_range.0), ox);
        let (x1, y1) = self.map((self.x_range.1, self.y_range.1), ox);
        let _ = write!(
            out,
            r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
            x1 - x0,
            y0 - y1
        );
        for i in 0..=4 {
            let f = f64::from(i) / 4.0;
            let xv = self.x_range.0 + f * (self.x_range.1 - self.x_range.0);
            let yv = self.y_range.0 + f * (self.y_range.1 - self.y_range.0);
            let (tx, _) = self.map((xv, self.y_range.0), ox);
            let (_, ty) = self.map((self.x_range.0, yv), ox);
            let _ = write!(
                out,
                r##"<text x="{tx}" y="{}" font-size="10" text-anchor="middle">{}</text><text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
                y0 + 14.0,
                short(xv),
                x0 - 4.0,
                ty + 3.0,
                short(yv)
            );
        }
        if self.diagonal {
            let _ = write!(
                out,
                r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4"/>"##
            );
        }
        let path: Vec<String> = self
            .points
            .iter()
            .map(|&p| {
                let (x, y) = self.map(p, ox);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            out,
            r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##,
            path.join(" ")
        );
        if self.markers {
            for &p in &self.points {
                let (x, y) = self.map(p, ox);
                let _ = write!(
                    out,
                    r##"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="#1f77b4"/>"##
                );
            }
        }
        let _ = write!(
            out,
            r##"<text x="{}" y="18" font-size="13" text-anchor="middle">{}</text><text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text><text x="12" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>"##,
            (x0 + x1) / 2.0,
            esc(&self.title),
            (x0 + x1) / 2.0,
            H - 8.0,
            esc(&self.x_label),
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            esc(&self.y_label)
        );
    }
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

/// ROC curve (left) and validation AvgRec by k (right) as one SVG.
pub fn svg(roc: &[(f64, f64)], auroc: Option<f64>, avg_rec_by_k: &[(usize, f64)]) -> String {
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{H}" font-family="sans-serif">"#,
        2.0 * W
    );
    out.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    Panel {
        title: format!(
            "ROC (AUROC {})",
            auroc.map_or("n/a".into(), |a| format!("{a:.4}"))
        ),
        x_label: "false-positive rate (human flagged)".into(),
        y_label: "true-positive rate".into(),
        x_range: (0.0, 1.0),
        y_range: (0.0, 1.0),
        points: roc.to_vec(),
        diagonal: true,
        markers: false,
    }
    .draw(&mut out, 0.0);
    let ks: Vec<(f64, f64)> = avg_rec_by_k.iter().map(|&(k, r)| (k as f64, r)).collect();
    let lo = ks
        .iter()
        .map(|p| p.1)
        .fold(100.0, f64::min)
        .floor()
        .min(99.0);
    let max_k = ks.iter().map(|p| p.0).fold(1.0, f64::max);
    Panel {
        title: "validation AvgRec by k".into(),
        x_label: "k".into(),
        y_label: "AvgRec (%)".into(),
        x_range: (0.0, max_k),
        y_range: (lo, 100.0),
        points: ks,
        diagonal: false,
        markers: true,
    }
    .draw(&mut out, W);
    out.push_str("</svg>\n");
    out
}
