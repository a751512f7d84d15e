//! 2-D scatter of cells coloured by label, with a legend beside the plot.

use std::path::Path;

use plotters::prelude::*;

use super::{
    FONT, PlotError, Result, check_size, padded, palette, tick_count, write_png_atomically,
};

/// Most characters of a label shown in the legend.
const MAX_LABEL_CHARS: usize = 28;

/// Writes a PNG of `size` pixels to `path`: one dot per point in `xy`,
/// coloured by `labels` (same length; colours assigned to labels in sorted
/// order, legend on the right with each label's count), with `title` on top
/// and `axis_labels` (x, y) on the axes. Points with a NaN or infinite
/// coordinate are skipped. The write is atomic (see [`crate::plot`]).
pub fn scatter_png<S: AsRef<str>>(
    path: &Path,
    xy: &[(f32, f32)],
    labels: &[S],
    title: &str,
    axis_labels: (&str, &str),
    size: (u32, u32),
) -> Result<()> {
    const WHAT: &str = "a scatter";
    check_size(size)?;
    if xy.len() != labels.len() {
        return Err(PlotError::BadInput {
            what: WHAT,
            message: format!(
                "{} points but {} labels; give one label per point",
                xy.len(),
                labels.len()
            ),
        });
    }
    let finite: Vec<usize> = (0..xy.len())
        .filter(|&i| xy[i].0.is_finite() && xy[i].1.is_finite())
        .collect();
    if finite.is_empty() {
        return Err(PlotError::BadInput {
            what: WHAT,
            message: "no point has finite coordinates".into(),
        });
    }
    let mut names: Vec<&str> = labels.iter().map(|s| s.as_ref()).collect();
    names.sort_unstable();
    names.dedup();
    let code = |s: &str| names.binary_search(&s).unwrap_or_default();
    let mut counts = vec![0usize; names.len()];
    for &i in &finite {
        counts[code(labels[i].as_ref())] += 1;
    }
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &i in &finite {
        let (x, y) = (f64::from(xy[i].0), f64::from(xy[i].1));
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    let radius = match finite.len() {
        0..=1000 => 3,
        1001..=5000 => 2,
        _ => 1,
    };

    write_png_atomically(path, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .margin(8, 0, 0, 0)
            .titled(title, (FONT, 26).into_font().style(FontStyle::Bold))
            .map_err(|e| e.to_string())?;
        let longest = names
            .iter()
            .map(|n| n.chars().count().min(MAX_LABEL_CHARS + 1))
            .max()
            .unwrap_or(0)
            + 8;
        let legend_w = ((longest * 9 + 40) as u32).clamp(120, size.0 / 3);
        let (plot_area, legend_area) = root.split_horizontally(size.0 - legend_w);

        let mut chart = ChartBuilder::on(&plot_area)
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(65)
            .build_cartesian_2d(padded(x_lo, x_hi), padded(y_lo, y_hi))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(tick_count(size.0 - legend_w, 100))
            .y_labels(tick_count(size.1, 60))
            .x_desc(axis_labels.0)
            .y_desc(axis_labels.1)
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 14))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(finite.iter().map(|&i| {
                let colour = palette(code(labels[i].as_ref()));
                Circle::new(
                    (f64::from(xy[i].0), f64::from(xy[i].1)),
                    radius,
                    colour.mix(0.85).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;

        // Legend: one row per label, as many as fit.
        let row_h = 22i32;
        let top = 20i32;
        let (_, legend_h) = legend_area.dim_in_pixel();
        let fit = ((legend_h as i32 - top) / row_h).max(1) as usize;
        let shown = if names.len() > fit {
            fit - 1
        } else {
            names.len()
        };
        let text_style = (FONT, 15).into_font().color(&BLACK);
        for (row, name) in names.iter().take(shown).enumerate() {
            let y = top + row as i32 * row_h;
            legend_area
                .draw(&Circle::new((12, y + 8), 6, palette(row).filled()))
                .map_err(|e| e.to_string())?;
            let mut text: String = name.chars().take(MAX_LABEL_CHARS).collect();
            if name.chars().count() > MAX_LABEL_CHARS {
                text.push('…');
            }
            text.push_str(&format!(" ({})", counts[row]));
            legend_area
                .draw_text(&text, &text_style, (26, y))
                .map_err(|e| e.to_string())?;
        }
        if shown < names.len() {
            let y = top + shown as i32 * row_h;
            legend_area
                .draw_text(
                    &format!("… and {} more", names.len() - shown),
                    &text_style,
                    (26, y),
                )
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_support::{listing, png_size, scratch};

    fn blobs(n_types: usize, per: usize) -> (Vec<(f32, f32)>, Vec<String>) {
        let mut xy = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n_types * per {
            let t = i % n_types;
            let angle = t as f32 / n_types as f32 * std::f32::consts::TAU;
            let jitter = ((i * 7919) % 997) as f32 / 997.0 - 0.5;
            let jitter2 = ((i * 104_729) % 991) as f32 / 991.0 - 0.5;
            xy.push((5.0 * angle.cos() + jitter, 5.0 * angle.sin() + jitter2));
            labels.push(format!("cell type {t}"));
        }
        (xy, labels)
    }

    #[test]
    fn writes_a_png_of_the_requested_size() {
        let dir = scratch("scatter");
        let path = dir.join("embedding.png");
        let (xy, labels) = blobs(10, 70);
        scatter_png(
            &path,
            &xy,
            &labels,
            "forge embedding (PCA of 700 cells)",
            ("PC 1", "PC 2"),
            (900, 700),
        )
        .unwrap();
        assert_eq!(png_size(&path), (900, 700));
        assert_eq!(listing(&dir), ["embedding.png"]);
        // Overwrites in place, still atomically.
        scatter_png(&path, &xy, &labels, "again", ("x", "y"), (640, 480)).unwrap();
        assert_eq!(png_size(&path), (640, 480));
        assert_eq!(listing(&dir), ["embedding.png"]);
        crate::plot::test_support::done(&dir);
    }

    #[test]
    fn many_labels_and_odd_points_still_draw() {
        let dir = scratch("scatter-many");
        let path = dir.join("sub/many.png");
        let (mut xy, labels) = blobs(45, 20);
        xy[3] = (f32::NAN, 1.0);
        scatter_png(&path, &xy, &labels, "45 labels", ("a", "b"), (800, 600)).unwrap();
        assert_eq!(png_size(&path), (800, 600));
        // A single point (flat ranges) is fine too.
        scatter_png(
            &dir.join("one.png"),
            &[(1.0, 1.0)],
            &["only"],
            "one",
            ("a", "b"),
            (400, 300),
        )
        .unwrap();
        crate::plot::test_support::done(&dir);
    }

    #[test]
    fn bad_inputs_are_errors_and_leave_no_file() {
        let dir = scratch("scatter-bad");
        let path = dir.join("x.png");
        let err = scatter_png(
            &path,
            &[(0.0, 0.0)],
            &["a", "b"],
            "t",
            ("x", "y"),
            (400, 300),
        )
        .unwrap_err();
        assert!(err.to_string().contains("1 points but 2 labels"), "{err}");
        let err = scatter_png(
            &path,
            &[(f32::NAN, 0.0)],
            &["a"],
            "t",
            ("x", "y"),
            (400, 300),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no point has finite"), "{err}");
        assert!(scatter_png(&path, &[(0.0, 0.0)], &["a"], "t", ("x", "y"), (10, 10)).is_err());
        assert!(listing(&dir).is_empty());
        crate::plot::test_support::done(&dir);
    }
}
