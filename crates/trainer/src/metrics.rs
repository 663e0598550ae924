//! `metrics.csv`, a run's figures epoch by epoch: its header, and a parser
//! that names the file, line and column of anything it cannot read.

use std::path::Path;

use anyhow::{anyhow, bail, Result};

/// The header of `metrics.csv`. Accuracies are percentages.
pub const METRICS_HEADER: &str =
    "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds";

/// The figures of one epoch, as `metrics.csv` has them (accuracies in percent).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsRow {
    /// 1-based epoch.
    pub epoch: f64,
    /// Training loss.
    pub train_loss: f64,
    /// Training accuracy, %.
    pub train_acc: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy, %.
    pub test_acc: f64,
    /// Seconds spent training, when recorded.
    pub train_seconds: Option<f64>,
    /// Seconds spent evaluating, when recorded.
    pub eval_seconds: Option<f64>,
}

const COLUMNS: [&str; 5] = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"];

/// Parses `metrics.csv` text: a header naming at least the columns `epoch,
/// train_loss, train_acc, test_loss, test_acc` (in any order; others are
/// ignored), then one row per epoch. Blank lines are skipped. `path` names
/// the file in errors, which give the 1-based line number.
pub fn parse_metrics(text: &str, path: &Path) -> Result<Vec<MetricsRow>> {
    let p = path.display();
    let mut lines = text.lines().enumerate();
    let header = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty())
        .map(|(_, l)| l)
        .ok_or_else(|| anyhow!("{p}: empty file, expected a metrics.csv header"))?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut at = [0usize; 5];
    for (slot, col) in at.iter_mut().zip(COLUMNS) {
        *slot = names.iter().position(|n| *n == col).ok_or_else(|| {
            anyhow!(
                "{p}: line 1: header `{header}` has no column `{col}` (expected {})",
                COLUMNS.join(",")
            )
        })?;
    }
    // Optional columns: an empty field means "not recorded".
    let seconds_at = |col: &str| names.iter().position(|n| *n == col);
    let (train_s, eval_s) = (seconds_at("train_seconds"), seconds_at("eval_seconds"));
    let mut rows = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            bail!(
                "{p}: line {n}: {} fields, the header has {}: `{line}`",
                fields.len(),
                names.len()
            );
        }
        let mut v = [0f64; 5];
        for ((slot, &col), name) in v.iter_mut().zip(&at).zip(COLUMNS) {
            *slot = fields[col].parse::<f64>().map_err(|_| {
                anyhow!(
                    "{p}: line {n}: column `{name}` is `{}`, expected a number",
                    fields[col]
                )
            })?;
        }
        let seconds = |at: Option<usize>| -> Result<Option<f64>> {
            match at.map(|c| fields[c]) {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| anyhow!("{p}: line {n}: `{v}` is not a number of seconds")),
            }
        };
        rows.push(MetricsRow {
            epoch: v[0],
            train_loss: v[1],
            train_acc: v[2],
            test_loss: v[3],
            test_acc: v[4],
            train_seconds: seconds(train_s)?,
            eval_seconds: seconds(eval_s)?,
        });
    }
    if rows.is_empty() {
        bail!("{p}: no epochs recorded yet (only a header)");
    }
    Ok(rows)
}

/// The largest epoch number and loss a plot shows.
pub(crate) const MAX_PLOTTED: f64 = 1e6;

/// Why a row cannot be drawn, if it cannot: an epoch that is not a whole
/// number in 0..=[`MAX_PLOTTED`], a loss that is not a finite number in
/// 0..=[`MAX_PLOTTED`], or an accuracy outside 0..=100 %. A value far out
/// of an axis's range would otherwise make the plotting library draw a
/// line across billions of pixels.
pub(crate) fn unplottable(r: &MetricsRow) -> Option<String> {
    let within = |v: f64, hi: f64| (0.0..=hi).contains(&v);
    if !(within(r.epoch, MAX_PLOTTED) && r.epoch.fract() == 0.0) {
        return Some(format!(
            "epoch {} is not a whole number in 0..=1e6",
            r.epoch
        ));
    }
    for (name, v, hi) in [
        ("train_loss", r.train_loss, MAX_PLOTTED),
        ("test_loss", r.test_loss, MAX_PLOTTED),
        ("train_acc", r.train_acc, 100.0),
        ("test_acc", r.test_acc, 100.0),
    ] {
        if !within(v, hi) {
            return Some(format!("epoch {}: {name} {v} is outside 0..={hi}", r.epoch));
        }
    }
    for (name, v) in [
        ("train_seconds", r.train_seconds),
        ("eval_seconds", r.eval_seconds),
    ] {
        if let Some(v) = v.filter(|&v| !(v.is_finite() && v >= 0.0)) {
            return Some(format!(
                "epoch {}: {name} {v} is not a finite number of at least 0",
                r.epoch
            ));
        }
    }
    None
}

/// Reads a run's `metrics.csv` at `path` for every command that shows it
/// (`plot`, `report`, `results`, `seed-table`): bounded in size, parsed,
/// and with the rows no table or plot may show (a non-finite or
/// out-of-range figure, see [`plottable`]) skipped with a warning naming
/// the file and the row. The rows kept may be none.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>> {
    let text =
        crate::files::read_text_limited(path, crate::files::MAX_METRICS_BYTES, "a run's metrics")?;
    Ok(plottable(&parse_metrics(&text, path)?, path))
}

/// The rows that can be drawn (not those with an epoch, a loss or an
/// accuracy out of range); a warning names the others, and the file `path`.
pub fn plottable(rows: &[MetricsRow], path: &Path) -> Vec<MetricsRow> {
    let mut kept = Vec::with_capacity(rows.len());
    for r in rows {
        match unplottable(r) {
            None => kept.push(r.clone()),
            Some(why) => tracing::warn!("{}: row skipped: {why}", path.display()),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_bad_lines() {
        let p = Path::new("run/metrics.csv");
        let ok = "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds\n1,0.5,90,0.4,91,,\n2,0.3,95,0.3,94.5,1.2,0.3\n";
        let rows = parse_metrics(ok, p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].test_acc, 94.5);
        let bad = ok.replace("2,0.3,95", "2,zero,95");
        let err = format!("{:#}", parse_metrics(&bad, p).unwrap_err());
        assert!(
            err.contains("run/metrics.csv: line 3") && err.contains("train_loss"),
            "{err}"
        );
        let short = format!("{ok}3,1,2\n");
        let err = format!("{:#}", parse_metrics(&short, p).unwrap_err());
        assert!(err.contains("line 4"), "{err}");
        let err = format!("{:#}", parse_metrics("a,b\n", p).unwrap_err());
        assert!(err.contains("line 1") && err.contains("epoch"), "{err}");
        assert!(parse_metrics("epoch,train_loss,train_acc,test_loss,test_acc\n", p).is_err());
    }

    #[test]
    fn rows_a_plot_cannot_show_are_named_and_skipped() {
        let p = Path::new("run/metrics.csv");
        let text = "epoch,train_loss,train_acc,test_loss,test_acc\n1,0.5,90,0.4,91\n2,inf,90,0.4,91\n2.5,0.5,90,0.4,91\n3,0.5,1e300,0.4,91\n4,0.3,95,NaN,96\n5,0.2,96,0.1,97\n";
        let rows = parse_metrics(text, p).unwrap();
        let kept = plottable(&rows, p);
        assert_eq!(kept.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1.0, 5.0]);
        assert!(unplottable(&rows[1]).unwrap().contains("train_loss inf"));
        assert!(unplottable(&rows[2]).unwrap().contains("epoch 2.5"));
        assert!(unplottable(&rows[3]).unwrap().contains("train_acc"));
        assert!(unplottable(&rows[4]).unwrap().contains("test_loss NaN"));
    }
}
