//! `cnn report`: one self-contained HTML page about a run.
//!
//! The page holds, with no external file, script or network access (images
//! are `data:` URIs, the CSS is inline):
//! * the loss and accuracy curves (`cnn plot`'s figure, PNG);
//! * the per-epoch figures beside the post's table (the post's epoch 0 is
//!   set beside our epoch 1, its epoch `e > 0` beside our epoch `e`), when
//!   the test set is MNIST;
//! * the best checkpoint's per-class accuracy and confusion matrix on the
//!   test set;
//! * the first conv layer's kernels and feature maps (`cnn visualize`'s
//!   figures), when the network has a conv layer;
//! * the most confident mistakes on the test set, as thumbnails.
//!
//! A part that does not apply is left out, and the page says so.
//! Class names are the data set's (Fashion-MNIST's `T-shirt/top`, ...).
//! All text is HTML-escaped. A tiny inline script, run on load, writes
//! whether every image decoded into `<body data-images-ok>` (`true` or
//! `false`) and the image count into `data-images`, for automated checks
//! (headless browsers); the page reads the same without it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use mnist_io::Dataset;

use crate::image_io::GreyImage;
use crate::plot;
use crate::post::{plural, train_figures, POST_TABLE};
use trainer::checkpoint::{write_atomic, Checkpoint};
use trainer::data::{class_names, DataSets};
use trainer::eval::Evaluation;
use trainer::metrics::{parse_metrics, MetricsRow};

/// How many mistakes the page shows.
pub const MISTAKES: usize = 25;

/// What `cnn report` was asked to do.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The run directory (metrics.csv, config.toml, best.ckpt or last.ckpt).
    pub run: PathBuf,
    /// The HTML file to write.
    pub out: PathBuf,
    /// Folder of IDX files whose test set the checkpoint is evaluated on.
    pub data: Option<PathBuf>,
}

/// What the written page shows, in figures.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    /// Epochs in metrics.csv.
    pub epochs: usize,
    /// The checkpoint evaluated.
    pub checkpoint: PathBuf,
    /// Its test set figures.
    pub evaluation: Evaluation,
    /// `<img>` elements on the page.
    pub images: usize,
    /// Size of the page in bytes.
    pub bytes: usize,
}

/// A misclassified test image.
#[derive(Clone, Debug, PartialEq)]
pub struct Mistake {
    /// Index in the test set.
    pub index: usize,
    /// True class.
    pub truth: usize,
    /// Predicted class.
    pub predicted: usize,
    /// Probability of the predicted class.
    pub confidence: f32,
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
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

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `<img>` element showing PNG bytes.
fn img(png: &[u8], alt: &str, class: &str) -> String {
    format!(
        "<img class=\"{}\" alt=\"{}\" src=\"data:image/png;base64,{}\">",
        escape(class),
        escape(alt),
        base64(png)
    )
}

/// One pass over `ds`: the figures of [`trainer::eval::evaluate`] and every
/// mistake, most confident first.
pub fn evaluate_with_mistakes(
    net: &mut Network,
    ds: &Dataset,
    batch: usize,
    norm: Option<(f32, f32)>,
) -> Result<(Evaluation, Vec<Mistake>)> {
    let loss = net.config().loss;
    let mut mistakes = Vec::new();
    let evaluation = trainer::eval::evaluate_each(net, ds, batch, norm, &mut |e| {
        if e.truth != e.predicted {
            mistakes.push(Mistake {
                index: e.index,
                truth: e.truth,
                predicted: e.predicted,
                confidence: loss.probabilities(e.outputs)[e.predicted],
            });
        }
    })?;
    mistakes.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.index.cmp(&b.index))
    });
    Ok((evaluation, mistakes))
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1150px;color:#222;padding:0 12px}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#555;margin-top:0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}
.ours{background:#eef6ff}.missing{color:#aaa}
.cm td{min-width:2.6em}.cm td.diag{font-weight:bold}
.pixel{image-rendering:pixelated;image-rendering:crisp-edges}
.curves{max-width:100%;height:auto}
.fig{max-width:100%;height:auto}
.mistakes{display:grid;grid-template-columns:repeat(auto-fill,minmax(110px,1fr));gap:10px}
.mistake{border:1px solid #ddd;border-radius:4px;padding:6px;text-align:center;font-size:.8em}
.mistake img{width:84px;height:84px;display:block;margin:0 auto 4px}
.bad{color:#b2182b}.note{color:#555;font-size:.9em}
.row{display:flex;flex-wrap:wrap;gap:32px;align-items:flex-start}
";

/// Checks, run on load: did every image decode? (See the module docs.)
const SCRIPT: &str = "window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);var ok=i.length>0&&i.every(function(m){return m.complete&&m.naturalWidth>0&&m.naturalHeight>0&&m.getBoundingClientRect().width>0;});document.body.dataset.images=String(i.length);document.body.dataset.imagesOk=ok?'true':'false';});";

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "—".into(),
    }
}

/// The post's table with our figures of the matching epochs beside it.
fn comparison_table(rows: &[MetricsRow]) -> String {
    let ours = |e: u32| {
        rows.iter()
            .find(|r| (r.epoch - f64::from(e.max(1))).abs() < 1e-9)
    };
    let mut s = String::from(
        "<table><tr><th rowspan=\"2\">post epoch</th><th colspan=\"4\">the post</th><th rowspan=\"2\">our epoch</th><th colspan=\"4\" class=\"ours\">this run</th></tr>\
         <tr><th>train loss</th><th>test loss</th><th>train acc %</th><th>test acc %</th>\
         <th class=\"ours\">train loss</th><th class=\"ours\">test loss</th><th class=\"ours\">train acc %</th><th class=\"ours\">test acc %</th></tr>\n",
    );
    for (e, trl, tel, tra, tea) in POST_TABLE {
        let r = ours(e);
        let cell = |v: Option<f64>, d: usize| {
            format!(
                "<td class=\"ours{}\">{}</td>",
                if v.is_some() { "" } else { " missing" },
                escape(&fmt_opt(v, d))
            )
        };
        let _ = writeln!(
            s,
            "<tr><td>{e}</td><td>{trl:.4}</td><td>{tel:.4}</td><td>{tra:.2}</td><td>{tea:.2}</td><td>{}</td>{}{}{}{}</tr>",
            e.max(1),
            cell(r.map(|r| r.train_loss), 4),
            cell(r.map(|r| r.test_loss), 4),
            cell(r.map(|r| r.train_acc), 2),
            cell(r.map(|r| r.test_acc), 2),
        );
    }
    s.push_str("</table>\n");
    s
}

fn all_epochs_table(rows: &[MetricsRow]) -> String {
    let mut s = String::from(
        "<table><tr><th>epoch</th><th>train loss</th><th>train acc %</th><th>test loss</th><th>test acc %</th></tr>\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.epoch,
            fmt_opt(Some(r.train_loss), 4),
            fmt_opt(Some(r.train_acc), 2),
            fmt_opt(Some(r.test_loss), 4),
            fmt_opt(Some(r.test_acc), 2)
        );
    }
    s.push_str("</table>\n");
    s
}

fn per_class_table(e: &Evaluation, names: &[String]) -> String {
    let mut s = String::from(
        "<table><tr><th class=\"l\">class</th><th>images</th><th>correct</th><th>accuracy %</th></tr>\n",
    );
    for (c, acc) in e.per_class_accuracy().iter().enumerate() {
        let total: u64 = e.confusion[c].iter().sum();
        let _ = writeln!(
            s,
            "<tr><td class=\"l\">{}</td><td>{total}</td><td>{}</td><td{}>{}</td></tr>",
            escape(&names[c]),
            e.confusion[c][c],
            if acc.is_finite() && *acc < 0.5 {
                " class=\"bad\""
            } else {
                ""
            },
            escape(&fmt_opt(Some(100.0 * acc), 2))
        );
    }
    s.push_str("</table>\n");
    s
}

fn confusion_table(e: &Evaluation, names: &[String]) -> String {
    let mut s = String::from("<table class=\"cm\"><tr><th class=\"l\">true \\ predicted</th>");
    for n in names {
        let _ = write!(s, "<th>{}</th>", escape(n));
    }
    s.push_str("</tr>\n");
    for (t, row) in e.confusion.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        let _ = write!(s, "<tr><th class=\"l\">{}</th>", escape(&names[t]));
        for (p, &v) in row.iter().enumerate() {
            let frac = v as f64 / total;
            let (r, g, b) = if p == t {
                (33, 102, 172)
            } else {
                (178, 24, 43)
            };
            let alpha = if v == 0 { 0.0 } else { 0.08 + 0.8 * frac };
            let _ = write!(
                s,
                "<td{} style=\"background:rgba({r},{g},{b},{alpha:.3})\">{v}</td>",
                if p == t { " class=\"diag\"" } else { "" }
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

/// Builds the page; returns the HTML, the evaluation of the checkpoint and the number of images.
pub fn render(opts: &ReportOptions) -> Result<(String, ReportSummary)> {
    let run = &opts.run;
    let metrics_path = run.join("metrics.csv");
    let text = trainer::files::read_text_limited(
        &metrics_path,
        trainer::files::MAX_METRICS_BYTES,
        "a run's metrics",
    )?;
    let rows = parse_metrics(&text, &metrics_path)?;
    let ckpt_path = [run.join("best.ckpt"), run.join("last.ckpt")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow!(
                "{}: no best.ckpt or last.ckpt in the run directory",
                run.display()
            )
        })?;
    let ckpt = Checkpoint::load(&ckpt_path)?;
    let data = opts.data.clone().ok_or_else(|| {
        anyhow!(
            "the run does not record where its data is{}: pass --data <dir> with the IDX files",
            ckpt.body
                .dataset
                .as_deref()
                .map(|d| format!(" (it was trained on {d})"))
                .unwrap_or_default()
        )
    })?;
    let sets = DataSets::load(&data)?;
    if let (Some(want), Some(have)) = (ckpt.body.dataset.as_deref(), sets.name()) {
        if want != have {
            bail!(
                "{}: the checkpoint was trained on {want}, but {} holds {have}",
                ckpt_path.display(),
                data.display()
            );
        }
    }
    let mut net = ckpt
        .network()
        .with_context(|| format!("{}", ckpt_path.display()))?;
    trainer::data::check_fits(
        &net,
        &sets.test,
        &format!("the test set in {}", data.display()),
    )?;
    let norm = ckpt.config.input_norm(&sets.train);
    let names = class_names(&sets.test);
    let classes = net.outputs();
    let names: Vec<String> = (0..classes)
        .map(|c| names.get(c).cloned().unwrap_or_else(|| c.to_string()))
        .collect();
    let (evaluation, mistakes) = evaluate_with_mistakes(&mut net, &sets.test, 100, norm)?;

    let dataset = sets.name().unwrap_or_else(|| "unknown data set".into());
    let dir_name = run
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run.display().to_string());
    let title = format!(
        "{} on {dataset}",
        plot::run_title(&ckpt.config.name, &dir_name)
    );

    let mut images = 0;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{CSS}</style><script>{SCRIPT}</script></head>\n<body data-images-ok=\"pending\">\n\
         <h1>{t}</h1>\n<p class=\"sub\">{desc}</p>\n",
        t = escape(&format!("Run report: {title}")),
        desc = escape(&ckpt.config.description),
    );
    let best_epoch = ckpt.body.epochs_done;
    let _ = writeln!(
        h,
        "<p>{}</p>",
        escape(&format!(
            "{} in metrics.csv. Checkpoint {} (after epoch {best_epoch}) on the {} test images of {}: loss {:.4}, accuracy {:.2}%.",
            plural(rows.len(), "epoch"),
            ckpt_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            evaluation.count,
            data.display(),
            evaluation.loss,
            100.0 * evaluation.accuracy
        ))
    );

    // Curves.
    h.push_str("<h2>Loss and accuracy</h2>\n");
    let drawn = trainer::metrics::plottable(&rows, &metrics_path);
    if drawn.is_empty() {
        h.push_str("<p class=\"note\">metrics.csv has no row a plot can show.</p>\n");
    } else {
        let png = plot::render(
            &drawn,
            &format!("{title}: loss and accuracy"),
            plot::Format::Png,
            1100,
            440,
        )?;
        h.push_str(&img(&png, "loss and accuracy curves", "curves"));
        images += 1;
    }

    // Tables.
    if dataset == "mnist" {
        h.push_str("<h2>Figures beside the post's</h2>\n<p class=\"note\">The post's epoch 0 (after one pass) is set beside our epoch 1; its epoch <i>e</i> beside our epoch <i>e</i>. </p>\n");
        let _ = writeln!(
            h,
            "<p class=\"note\">{}</p>",
            escape(
                &train_figures(ckpt.config.training.eval_train).replace('`', "")
            )
        );
        h.push_str(&comparison_table(&rows));
    } else {
        let _ = writeln!(
            h,
            "<h2>Figures</h2>\n<p class=\"note\">{}</p>",
            escape(&format!(
                "The post's table is left out: its figures are for MNIST, and this run's test set is {}.",
                sets.name().unwrap_or_else(|| "not one recognised as MNIST".into())
            ))
        );
    }
    let _ = write!(
        h,
        "<details><summary>Every epoch of this run ({})</summary>\n{}</details>\n",
        rows.len(),
        all_epochs_table(&rows)
    );

    // Per class.
    let _ = write!(
        h,
        "<h2>Per class, on the test set</h2>\n<div class=\"row\"><div><h3>Accuracy</h3>\n{}</div><div><h3>Confusion matrix</h3>\n<p class=\"note\">Rows: true class; columns: predicted. Blue: correct; red: mistakes (shade: share of the row).</p>\n{}</div></div>\n",
        per_class_table(&evaluation, &names),
        confusion_table(&evaluation, &names)
    );

    // First layer.
    h.push_str("<h2>First convolution layer</h2>\n");
    if crate::visualize::first_conv(&net).is_err() {
        let _ = writeln!(
            h,
            "<p class=\"note\">{}</p>",
            escape(&format!(
                "Left out: the {} network has no conv2d layer, so there are no kernels or feature maps to show.",
                ckpt.config.name
            ))
        );
    } else {
        let filters = crate::visualize::filters_figure(&net, 16, 2, None)?;
        let _ = writeln!(
            h,
            "<p>{}</p>{}",
            escape(&format!("Kernels: {}.", filters.description)),
            img(&filters.png, "first layer kernels", "fig pixel")
        );
        images += 1;
        if !sets.test.is_empty() {
            let maps = crate::visualize::feature_maps_figure(
                &mut net,
                sets.test.image(0),
                norm,
                4,
                2,
                None,
            )?;
            let label = usize::from(sets.test.label(0));
            let _ = writeln!(
                h,
                "<p>{}</p>{}",
                escape(&format!(
                    "Feature maps of test image 0 ({}): {}.",
                    names
                        .get(label)
                        .cloned()
                        .unwrap_or_else(|| label.to_string()),
                    maps.description
                )),
                img(&maps.png, "first layer feature maps", "fig pixel")
            );
            images += 1;
        }
    }

    // Mistakes.
    let shown = mistakes.len().min(MISTAKES);
    let _ = writeln!(
        h,
        "<h2>The {shown} most confident mistakes</h2>\n<p class=\"note\">{} of {} test images are misclassified; these are the ones the network was surest of.</p>\n<div class=\"mistakes\">",
        mistakes.len(),
        evaluation.count
    );
    let (rows_px, cols_px) = (sets.test.rows(), sets.test.cols());
    for m in mistakes.iter().take(MISTAKES) {
        let png = GreyImage {
            width: cols_px,
            height: rows_px,
            pixels: sets.test.image(m.index).to_vec(),
        }
        .to_png()?;
        let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let _ = writeln!(
            h,
            "<div class=\"mistake\">{}<div>#{}</div><div>true: <b>{}</b></div><div class=\"bad\">predicted: <b>{}</b></div><div>{:.1}%</div></div>",
            img(
                &png,
                &format!("test image {}, a {} taken for a {}", m.index, name(m.truth), name(m.predicted)),
                "pixel"
            ),
            m.index,
            escape(&name(m.truth)),
            escape(&name(m.predicted)),
            100.0 * m.confidence
        );
        images += 1;
    }
    h.push_str("</div>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">{}</p>\n</body></html>",
        escape(&format!(
            "Written by cnn report {} from {}.",
            env!("CARGO_PKG_VERSION"),
            run.display()
        ))
    );
    let summary = ReportSummary {
        epochs: rows.len(),
        checkpoint: ckpt_path,
        evaluation,
        images,
        bytes: h.len(),
    };
    Ok((h, summary))
}

/// Builds the page and writes it atomically to `opts.out`.
pub fn run(opts: &ReportOptions) -> Result<ReportSummary> {
    trainer::files::check_output(&opts.out, &[&opts.run.join("metrics.csv")])?;
    let (html, summary) = render(opts)?;
    write_atomic(&opts.out, html.as_bytes())?;
    Ok(summary)
}

/// The path a report is written to, for messages.
pub fn describe(summary: &ReportSummary, out: &Path) -> String {
    format!(
        "wrote {} ({} KB, {}): {}; {} on the test set: accuracy {:.2}%, loss {:.4}",
        out.display(),
        summary.bytes.div_ceil(1024),
        plural(summary.images, "image"),
        plural(summary.epochs, "epoch"),
        summary.checkpoint.display(),
        100.0 * summary.evaluation.accuracy,
        summary.evaluation.loss
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_encodes() {
        assert_eq!(
            escape("T-shirt/top <a href=\"x\">&'"),
            "T-shirt/top &lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
    }

    #[test]
    fn post_epoch_zero_sits_beside_our_epoch_one() {
        let row = |e: f64| MetricsRow {
            epoch: e,
            train_loss: 0.5,
            train_acc: 90.0,
            test_loss: 0.25,
            test_acc: 91.5,
            train_seconds: None,
            eval_seconds: None,
        };
        let t = comparison_table(&[row(1.0), row(2.0), row(10.0)]);
        assert!(t.contains("<tr><td>0</td><td>0.1224</td>"), "{t}");
        assert!(
            t.contains("<td>1</td><td class=\"ours\">0.5000</td>"),
            "{t}"
        );
        assert!(t.contains("<tr><td>10</td><td>0.0341</td><td>0.0400</td><td>98.89</td><td>98.54</td><td>10</td><td class=\"ours\">0.5000</td>"), "{t}");
        assert!(
            t.contains("<td>20</td><td class=\"ours missing\">—</td>"),
            "{t}"
        );
    }
}
