//! Training curves: one line per named series (train loss, val loss...)
//! against the optimizer step.

use std::path::Path;

use plotters::prelude::*;

use super::{
    FONT, PlotError, Result, check_size, padded, palette, tick_count, write_png_atomically,
};

/// A series ready to draw: colour index, name, finite points by step.
type Cleaned<'a> = (usize, &'a str, Vec<(f64, f64)>);

/// Series with at most this many points also get a dot per point.
const MARK_POINTS_UP_TO: usize = 60;

/// Writes a PNG of `size` pixels to `path` with one line per entry of
/// `series` (`(name, [(step, value), ...])`, drawn in step order, named in a
/// legend), x axis "step", y axis `y_label`, `title` on top. Points with a
/// NaN or infinite step or value are skipped; empty series are left out of
/// the chart and the legend. The write is atomic (see [`crate::plot`]).
pub fn loss_curve_png(
    path: &Path,
    series: &[(&str, Vec<(f64, f64)>)],
    title: &str,
    y_label: &str,
    size: (u32, u32),
) -> Result<()> {
    check_size(size)?;
    // (colour index, name, finite points sorted by step), non-empty only.
    let cleaned: Vec<Cleaned<'_>> = series
        .iter()
        .enumerate()
        .map(|(i, (name, points))| {
            let mut pts: Vec<(f64, f64)> = points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (i, *name, pts)
        })
        .filter(|(_, _, pts)| !pts.is_empty())
        .collect();
    if cleaned.is_empty() {
        return Err(PlotError::BadInput {
            what: "a loss curve",
            message: "no series has a finite (step, value) point".into(),
        });
    }
    let all = cleaned.iter().flat_map(|(_, _, p)| p.iter());
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    let whole_steps = cleaned
        .iter()
        .flat_map(|(_, _, p)| p.iter())
        .all(|(x, _)| x.fract() == 0.0);
    let x_range = if x_hi > x_lo {
        x_lo..x_hi
    } else {
        padded(x_lo, x_hi)
    };

    write_png_atomically(path, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 26).into_font().style(FontStyle::Bold))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(75)
            .build_cartesian_2d(x_range, padded(y_lo, y_hi))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(tick_count(size.0, 100))
            .y_labels(tick_count(size.1, 60))
            .x_label_formatter(&|x| {
                if whole_steps {
                    format!("{x:.0}")
                } else {
                    let s = format!("{x:.3}");
                    s.trim_end_matches('0').trim_end_matches('.').to_owned()
                }
            })
            .x_desc("step")
            .y_desc(y_label)
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 14))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, name, pts) in &cleaned {
            let colour = palette(*i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
            if pts.len() <= MARK_POINTS_UP_TO {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .margin(10)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_support::{listing, png_size, scratch};

    #[test]
    fn writes_train_and_val_curves() {
        let dir = scratch("loss");
        let path = dir.join("loss.png");
        let train: Vec<(f64, f64)> = (0..400)
            .map(|s| {
                let s = s as f64;
                (s, 6.0 * (-s / 120.0).exp() + 1.2 + 0.15 * (s * 0.7).sin())
            })
            .collect();
        let val: Vec<(f64, f64)> = (1..=8)
            .map(|e| {
                let s = e as f64 * 50.0;
                (s, 6.0 * (-s / 120.0).exp() + 1.4)
            })
            .collect();
        loss_curve_png(
            &path,
            &[("train loss", train), ("val loss", val)],
            "transformer_encoder pretraining",
            "masked-gene loss",
            (1000, 600),
        )
        .unwrap();
        assert_eq!(png_size(&path), (1000, 600));
        assert_eq!(listing(&dir), ["loss.png"]);
        crate::plot::test_support::done(&dir);
    }

    #[test]
    fn skips_non_finite_points_and_empty_series() {
        let dir = scratch("loss-odd");
        let path = dir.join("odd.png");
        let pts = vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 0.5)];
        loss_curve_png(
            &path,
            &[("train", pts), ("val", vec![])],
            "t",
            "loss",
            (400, 300),
        )
        .unwrap();
        assert_eq!(png_size(&path), (400, 300));
        // One point only.
        loss_curve_png(
            &path,
            &[("train", vec![(5.0, 2.0)])],
            "t",
            "loss",
            (400, 300),
        )
        .unwrap();
        let err = loss_curve_png(
            &path,
            &[("train", vec![(0.0, f64::INFINITY)])],
            "t",
            "l",
            (400, 300),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no series has a finite"), "{err}");
        assert_eq!(listing(&dir), ["odd.png"]);
        crate::plot::test_support::done(&dir);
    }
}
