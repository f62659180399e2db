//! Plots for docs/benchmarks.md, drawn with `plotters` as SVG (text stays
//! text, and no font files are needed on the machine).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// One chart: named samples, each drawn as its empirical CDF.
pub struct Panel {
    pub title: String,
    pub series: Vec<(String, Vec<f64>)>,
}

/// Points drawn per curve at most; more would only bloat the SVG.
const MAX_POINTS: usize = 600;

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xe7, 0x29, 0x8a),
];

/// The CDF (x: value in ms, y: share of calls at most that long) of every
/// series, one panel per chart, `columns` panels a row. The x axis ends a
/// little past the largest 99th percentile, so one outlier does not squash
/// the curves.
pub fn cdfs(path: &Path, panels: &[Panel], columns: usize) -> Result<()> {
    let columns = columns.max(1);
    let rows = panels.len().div_ceil(columns).max(1);
    let root = SVGBackend::new(path, (520 * columns as u32, 360 * rows as u32)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    for (panel, area) in panels.iter().zip(root.split_evenly((rows, columns))) {
        let sorted: Vec<(String, Vec<f64>)> = panel
            .series
            .iter()
            .map(|(name, v)| {
                let mut v = v.clone();
                v.sort_by(f64::total_cmp);
                (name.clone(), v)
            })
            .collect();
        let x_max = sorted
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(_, v)| v[((v.len() as f64 * 0.99) as usize).min(v.len() - 1)])
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..x_max, 0f64..1f64)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("completion time (ms)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .y_desc("share of calls")
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (name, v)) in sorted.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let n = v.len();
            let step = n.div_ceil(MAX_POINTS).max(1);
            let mut points: Vec<(f64, f64)> = (0..n)
                .step_by(step)
                .map(|k| (v[k].min(x_max), (k + 1) as f64 / n as f64))
                .collect();
            points.push((v[n - 1].min(x_max), 1.0));
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_and_title() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let panels = vec![Panel {
            title: "a title".into(),
            series: vec![
                (
                    "fast".into(),
                    (1..=5000).map(|x| x as f64 / 100.0).collect(),
                ),
                ("slow".into(), vec![40.0, 80.0, 120.0]),
                ("none".into(), Vec::new()),
            ],
        }];
        cdfs(&path, &panels, 2).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for text in ["a title", "fast", "slow", "completion time (ms)"] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Downsampled: the fast curve has at most MAX_POINTS + 1 points.
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
    }
}
