//! `cnn plot`: loss and accuracy curves of a run, train and test, from its
//! `metrics.csv`, as PNG or SVG (plotters).
//!
//! Text is drawn with DejaVu Sans (a Latin subset, `assets/`), embedded in
//! the binary, so plotting needs no system font library; in PNGs, glyph by
//! glyph by the `glyphs` module.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::image_io::RgbImage;
use trainer::files::write_atomic;
use trainer::metrics::{read_metrics, MetricsRow};

/// Output format, chosen by the file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.png`.
    Png,
    /// `.svg`.
    Svg,
}

impl Format {
    /// The format `path`'s extension names (case-insensitive), or an error.
    pub(crate) fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => bail!(
                "{}: unknown output format; give a file name ending in .png or .svg",
                path.display()
            ),
        }
    }
}

/// Registers the embedded font as `sans-serif` (once).
pub(crate) fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, crate::glyphs::FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        bail!("the embedded font does not parse")
    }
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

/// Value range of the finite values, padded; `floor` bounds it below.
fn range(values: impl Iterator<Item = f64>, floor: Option<f64>, ceil: Option<f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi || lo.is_nan() {
        return (floor.unwrap_or(0.0), ceil.unwrap_or(1.0));
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.02).max(1e-3);
    let mut lo = lo - pad;
    let mut hi = hi + pad;
    if let Some(f) = floor {
        lo = lo.max(f);
    }
    if let Some(c) = ceil {
        hi = hi.min(c);
    }
    (lo, hi)
}

/// The font of every text of the plot, at `size`.
fn font(size: f64) -> FontDesc<'static> {
    ("sans-serif", size).into_font()
}

/// Which figure of a metrics row a curve shows.
type Pick = fn(&MetricsRow) -> f64;

/// One of the two panels: its caption, the y axis's label, the train and
/// test curves, and bounds of the y range.
struct Panel {
    caption: &'static str,
    ylabel: &'static str,
    train: Pick,
    test: Pick,
    floor: Option<f64>,
    ceil: Option<f64>,
}

/// Loss on the left, accuracy on the right.
const PANELS: [Panel; 2] = [
    Panel {
        caption: "loss",
        ylabel: "loss",
        train: |r| r.train_loss,
        test: |r| r.test_loss,
        floor: Some(0.0),
        ceil: None,
    },
    Panel {
        caption: "accuracy",
        ylabel: "accuracy (%)",
        train: |r| r.train_acc,
        test: |r| r.test_acc,
        floor: Some(0.0),
        ceil: Some(100.0),
    },
];

/// Colours of the train and test curves.
const TRAIN_COLOUR: RGBColor = RGBColor(31, 119, 180);
const TEST_COLOUR: RGBColor = RGBColor(214, 39, 40);

/// The legend's name for the train curves: a run trained without
/// `--eval-train` records running means over each epoch's batches, taken while
/// the weights change, not a pass over the training set after the epoch.
pub fn train_label(eval_train: bool) -> &'static str {
    if eval_train {
        "train"
    } else {
        "train (running mean over the epoch)"
    }
}

/// The title above the two panels side by side; text scales with the width.
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[MetricsRow],
    title: &str,
    train: &str,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let (w, _) = root.dim_in_pixel();
    let text_scale = (f64::from(w) / 1200.0).clamp(0.6, 3.0);
    let root = root
        .titled(title, font(22.0 * text_scale))
        .map_err(plot_err)?;
    let panels = root.split_evenly((1, 2));
    let epochs = epoch_range(rows);
    for (area, panel) in panels.iter().zip(&PANELS) {
        draw_panel(area, (rows, train), panel, epochs, text_scale)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The x axis's range: the epochs, padded (one epoch: half an epoch either side).
fn epoch_range(rows: &[MetricsRow]) -> (f64, f64) {
    let (a, b) = range(rows.iter().map(|r| r.epoch), None, None);
    if rows.len() == 1 {
        (rows[0].epoch - 0.5, rows[0].epoch + 0.5)
    } else {
        (a.max(0.0).min(rows[0].epoch), b)
    }
}

/// One panel: axes, the train and test curves, and the legend.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (rows, train): (&[MetricsRow], &str),
    panel: &Panel,
    (x0, x1): (f64, f64),
    text_scale: f64,
) -> Result<()> {
    let (y0, y1) = range(
        rows.iter()
            .flat_map(|r| [(panel.train)(r), (panel.test)(r)]),
        panel.floor,
        panel.ceil.map(|c| c + 0.5),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, font(18.0 * text_scale))
        .margin((10.0 * text_scale) as i32)
        .x_label_area_size((40.0 * text_scale) as i32)
        .y_label_area_size((60.0 * text_scale) as i32)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(panel.ylabel)
        .label_style(font(13.0 * text_scale))
        .axis_desc_style(font(15.0 * text_scale))
        .x_labels(rows.len().clamp(2, 10))
        // Epochs are whole numbers: label only the ticks that are.
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(plot_err)?;
    draw_curves(&mut chart, (rows, train), panel, text_scale)?;
    chart
        .configure_series_labels()
        .label_font(font(14.0 * text_scale))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(if panel.caption == "loss" {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// The panel's train and test curves, with markers up to 40 epochs.
fn draw_curves<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    (rows, train): (&[MetricsRow], &str),
    panel: &Panel,
    text_scale: f64,
) -> Result<()> {
    let markers = rows.len() <= 40;
    for (label, pick, colour) in [
        (train, panel.train, TRAIN_COLOUR),
        ("test", panel.test, TEST_COLOUR),
    ] {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.epoch, pick(r)))
            .filter(|(_, y)| y.is_finite())
            .collect();
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(plot_err)?
            .label(label.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if markers {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&p| Circle::new(p, (3.0 * text_scale) as i32, colour.filled())),
                )
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// Renders the two panels (loss; accuracy) to PNG or SVG bytes; `train`
/// names the train curves ([`train_label`]).
pub fn render(
    (rows, train): (&[MetricsRow], &str),
    title: &str,
    format: Format,
    width: u32,
    height: u32,
) -> Result<Vec<u8>> {
    if !(100..=10_000).contains(&width) || !(100..=10_000).contains(&height) {
        bail!("plot size {width}x{height}: width and height must be 100..=10000 pixels");
    }
    register_font()?;
    match format {
        Format::Png => {
            let mut buf = vec![0u8; 3 * width as usize * height as usize];
            {
                let root = crate::glyphs::Bitmap::with_buffer(&mut buf, (width, height))
                    .into_drawing_area();
                draw(root, rows, title, train)?;
            }
            RgbImage {
                width: width as usize,
                height: height as usize,
                pixels: buf,
            }
            .to_png()
        }
        Format::Svg => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, (width, height)).into_drawing_area();
                draw(root, rows, title, train)?;
            }
            Ok(s.into_bytes())
        }
    }
}

/// The run's config name from `<run>/config.toml` (`name = ...`), if it has one.
pub(crate) fn run_name(run: &Path) -> Option<String> {
    let text = trainer::files::read_text_limited(
        &run.join("config.toml"),
        trainer::files::MAX_CONFIG_BYTES,
        "a config",
    )
    .ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table.get("name")?.as_str().map(str::to_string)
}

/// Whether the run at `run` evaluated the training set after each epoch
/// (`[training] eval_train` in its `config.toml`).
pub(crate) fn run_eval_train(run: &Path) -> bool {
    let text = trainer::files::read_text_limited(
        &run.join("config.toml"),
        trainer::files::MAX_CONFIG_BYTES,
        "a config",
    );
    let table: Option<toml::Table> = text.ok().and_then(|t| toml::from_str(&t).ok());
    table
        .and_then(|t| t.get("training")?.get("eval_train")?.as_bool())
        .unwrap_or(false)
}

/// A run's name in titles: its config's name, and its directory's when that differs.
pub(crate) fn run_title(config: &str, dir_name: &str) -> String {
    if config == dir_name {
        config.to_string()
    } else {
        format!("{config} ({dir_name})")
    }
}

/// Reads `<run>/metrics.csv`, draws it and writes `out` atomically; returns the number of epochs.
pub fn run(run: &Path, out: &Path, width: u32, height: u32, force: bool) -> Result<usize> {
    let format = Format::from_path(out)?;
    let metrics = run.join("metrics.csv");
    trainer::files::check_output(out, &[&metrics], force)?;
    let rows = read_metrics(&metrics)?;
    if rows.is_empty() {
        bail!(
            "{}: no row holds figures a plot can show",
            metrics.display()
        );
    }
    let dir_name = run
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run.display().to_string());
    let title = match run_name(run) {
        Some(name) => format!("{}: loss and accuracy", run_title(&name, &dir_name)),
        None => format!("{dir_name}: loss and accuracy"),
    };
    let label = train_label(run_eval_train(run));
    let bytes = render((&rows, label), &title, format, width, height)?;
    write_atomic(out, &bytes)?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_named_after_its_config_is_titled_once() {
        assert_eq!(run_title("seed", "seed"), "seed");
        assert_eq!(run_title("seed", "seed-100"), "seed (seed-100)");
    }

    #[test]
    fn formats() {
        assert_eq!(Format::from_path(Path::new("a.PNG")).unwrap(), Format::Png);
        assert_eq!(Format::from_path(Path::new("a.svg")).unwrap(), Format::Svg);
        assert!(Format::from_path(Path::new("a.jpg")).is_err());
        assert!(Format::from_path(Path::new("a")).is_err());
    }
}
