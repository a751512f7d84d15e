//! PNG charts for people: the 2-D embedding scatter of `forge assess` and
//! the loss curves of `forge train`.
//!
//! - [`scatter_png`]: points coloured by label, legend on the right.
//! - [`loss_curve_png`]: one line per series (train and val loss) against
//!   the step.
//!
//! Drawing uses `plotters` with its bitmap backend and a font compiled into
//! the binary (DejaVu Sans), so text renders the same on a machine without
//! any system fonts. Every file is written atomically: the chart goes to a
//! temporary file beside the target, which is renamed over it only once
//! complete, so a reader never sees half a PNG and a failure leaves no
//! temporary file behind. Computing the 2-D coordinates is not done here:
//! see [`crate::project_2d`].

mod curves;
mod scatter;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use plotters::style::{FontStyle, RGBColor};

pub use curves::loss_curve_png;
pub use scatter::scatter_png;

/// Width and height in pixels used when the caller has no preference.
pub const DEFAULT_SIZE: (u32, u32) = (1000, 750);

/// Font family every chart uses (registered from the bundled DejaVu Sans).
const FONT: &str = "sans-serif";

/// Everything that can go wrong while drawing a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The inputs cannot make a chart (empty, mismatched lengths, all NaN).
    #[error("cannot plot {what}: {message}")]
    BadInput {
        /// Which chart.
        what: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// The requested image size is unusable.
    #[error("image size {width}x{height} is too small; use at least 200x150 pixels")]
    BadSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },

    /// The chart could not be drawn or encoded.
    #[error("{}: drawing failed: {message}", path.display())]
    Draw {
        /// The target file.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },

    /// The file could not be written or moved into place.
    #[error("{}: {source}", path.display())]
    Io {
        /// The target file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result alias of this module.
pub type Result<T, E = PlotError> = std::result::Result<T, E>;

/// Registers the bundled font once per process.
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let normal =
                plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
            let bold = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
            match (normal, bold) {
                (Ok(()), Ok(())) => Ok(()),
                _ => Err("the bundled DejaVu Sans font could not be loaded".to_owned()),
            }
        })
        .clone()
}

fn check_size(size: (u32, u32)) -> Result<()> {
    if size.0 < 200 || size.1 < 150 {
        return Err(PlotError::BadSize {
            width: size.0,
            height: size.1,
        });
    }
    Ok(())
}

/// Draws with `draw(tmp_path)` into a temporary PNG beside `path`, then
/// renames it to `path`. The temporary file is removed on failure.
fn write_png_atomically<F>(path: &Path, draw: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<(), String>,
{
    ensure_font().map_err(|message| PlotError::Draw {
        path: path.to_owned(),
        message,
    })?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent).map_err(|source| PlotError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plot".to_owned());
    // The image encoder picks the format from the extension: keep `.png`.
    let tmp = path.with_file_name(format!(
        ".{name}.partial-{}-{}.png",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = draw(&tmp)
        .map_err(|message| PlotError::Draw {
            path: path.to_owned(),
            message,
        })
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|source| PlotError::Io {
                path: path.to_owned(),
                source,
            })
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Colour of the `i`-th label: matplotlib's tab10, then tab20's light
/// shades, then evenly spaced hues.
fn palette(i: usize) -> RGBColor {
    const TAB20: [(u8, u8, u8); 20] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (199, 199, 199),
        (219, 219, 141),
        (158, 218, 229),
    ];
    if let Some(&(r, g, b)) = TAB20.get(i) {
        return RGBColor(r, g, b);
    }
    // Golden-angle hues, medium saturation and lightness.
    let h = ((i - TAB20.len()) as f64 * 137.508) % 360.0;
    let (s, l) = (0.55, 0.5);
    let c = (1.0 - (2.0 * l - 1.0f64).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(to(r), to(g), to(b))
}

/// How many tick labels fit along `pixels`, one per `spacing` pixels.
fn tick_count(pixels: u32, spacing: u32) -> usize {
    (pixels / spacing).clamp(2, 10) as usize
}

/// A range covering `lo..hi` with 5% padding (1 either side when flat).
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = hi - lo;
    if span > 0.0 {
        (lo - 0.05 * span)..(hi + 0.05 * span)
    } else {
        (lo - 1.0)..(hi + 1.0)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    /// Width and height from a PNG's IHDR chunk, after checking the
    /// signature.
    pub(crate) fn png_size(path: &std::path::Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    /// Names in `dir` (to check no temporary file is left).
    pub(crate) fn listing(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A fresh empty folder in the system temp folder, or under
    /// `$FORGE_KEEP_PLOTS` when that is set (to look at the charts).
    pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
        let base = std::env::var_os("FORGE_KEEP_PLOTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("forge-plot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Removes a scratch folder unless `$FORGE_KEEP_PLOTS` is set.
    pub(crate) fn done(dir: &std::path::Path) {
        if std::env::var_os("FORGE_KEEP_PLOTS").is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_starts_with_tab10_and_stays_distinct() {
        assert_eq!(palette(0), RGBColor(31, 119, 180));
        let colours: std::collections::HashSet<(u8, u8, u8)> = (0..60)
            .map(|i| {
                let c = palette(i);
                (c.0, c.1, c.2)
            })
            .collect();
        assert_eq!(colours.len(), 60);
    }

    #[test]
    fn failed_draw_leaves_nothing_behind() {
        let dir = test_support::scratch("failed");
        let target = dir.join("x.png");
        let err = write_png_atomically(&target, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err("boom".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert!(test_support::listing(&dir).is_empty());
        test_support::done(&dir);
    }

    #[test]
    fn too_small_is_an_error() {
        assert!(matches!(
            check_size((10, 10)),
            Err(PlotError::BadSize { .. })
        ));
        assert!(check_size(DEFAULT_SIZE).is_ok());
    }
}
