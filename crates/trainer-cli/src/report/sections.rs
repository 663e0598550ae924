//! The report's sections, in the order the page shows them; each appends
//! its HTML to the [`Page`].

use std::fmt::Write as _;

use anyhow::Result;

use super::html::{escape, Page, CSS, SCRIPT};
use super::load::RunData;
use super::mistakes::MISTAKES;
use super::tables::{all_epochs_table, comparison_table, confusion_table, per_class_table};
use crate::image_io::GreyImage;
use crate::plot;
use crate::post::{plural, train_figures};
use crate::visualize;

/// The document's head, the title, the config's description and a
/// paragraph on the checkpoint's test figures.
pub(crate) fn head(page: &mut Page, r: &RunData) {
    let _ = write!(
        page.html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{CSS}</style><script>{SCRIPT}</script></head>\n<body data-images-ok=\"pending\">\n\
         <h1>{t}</h1>\n<p class=\"sub\">{desc}</p>\n",
        t = escape(&format!("Run report: {}", r.title)),
        desc = escape(&r.ckpt.config.description),
    );
    let best_epoch = r.ckpt.body.epochs_done;
    let _ = writeln!(
        page.html,
        "<p>{}</p>",
        escape(&format!(
            "{} in metrics.csv. Checkpoint {} (after epoch {best_epoch}) on the {} test images of {}: loss {:.4}, accuracy {:.2}%.",
            plural(r.rows.len(), "epoch"),
            r.ckpt_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            r.evaluation.count,
            r.data.display(),
            r.evaluation.loss,
            100.0 * r.evaluation.accuracy
        ))
    );
}

/// The loss and accuracy curves (`cnn plot`'s figure).
pub(crate) fn curves(page: &mut Page, r: &RunData) -> Result<()> {
    page.html.push_str("<h2>Loss and accuracy</h2>\n");
    let drawn = trainer::metrics::plottable(&r.rows, &r.metrics_path);
    if drawn.is_empty() {
        page.html
            .push_str("<p class=\"note\">metrics.csv has no row a plot can show.</p>\n");
    } else {
        let train = plot::train_label(r.ckpt.config.training.eval_train);
        let png = plot::render(
            (&drawn, train),
            &format!("{}: loss and accuracy", r.title),
            plot::Format::Png,
            1100,
            440,
        )?;
        let img = page.img(&png, "loss and accuracy curves", "curves");
        page.html.push_str(&img);
    }
    Ok(())
}

/// The post's table beside ours (MNIST only, else a note), then every epoch.
pub(crate) fn figures(page: &mut Page, r: &RunData) {
    let h = &mut page.html;
    if r.dataset == "mnist" {
        h.push_str("<h2>Figures beside the post's</h2>\n<p class=\"note\">The post's epoch 0 (after one pass) is set beside our epoch 1; its epoch <i>e</i> beside our epoch <i>e</i>. </p>\n");
        let _ = writeln!(
            h,
            "<p class=\"note\">{}</p>",
            escape(&train_figures(r.ckpt.config.training.eval_train).replace('`', ""))
        );
        h.push_str(&comparison_table(&r.rows));
    } else {
        let _ = writeln!(
            h,
            "<h2>Figures</h2>\n<p class=\"note\">{}</p>",
            escape(&format!(
                "The post's table is left out: its figures are for MNIST, and this run's test set is {}.",
                r.sets.name().unwrap_or_else(|| "not one recognised as MNIST".into())
            ))
        );
    }
    let _ = write!(
        h,
        "<details><summary>Every epoch of this run ({})</summary>\n{}</details>\n",
        r.rows.len(),
        all_epochs_table(&r.rows)
    );
}

/// Accuracy per class and the confusion matrix, side by side.
pub(crate) fn per_class(page: &mut Page, r: &RunData) {
    let _ = write!(
        page.html,
        "<h2>Per class, on the test set</h2>\n<div class=\"row\"><div><h3>Accuracy</h3>\n{}</div><div><h3>Confusion matrix</h3>\n<p class=\"note\">Rows: true class; columns: predicted. Blue: correct; red: mistakes (shade: share of the row).</p>\n{}</div></div>\n",
        per_class_table(&r.evaluation, &r.names),
        confusion_table(&r.evaluation, &r.names)
    );
}

/// The first conv layer's kernels and the feature maps of test image 0
/// (`cnn visualize`'s figures), or a note when there is no conv layer.
pub(crate) fn first_layer(page: &mut Page, r: &mut RunData) -> Result<()> {
    page.html.push_str("<h2>First convolution layer</h2>\n");
    if visualize::first_conv(&r.net).is_err() {
        let _ = writeln!(
            page.html,
            "<p class=\"note\">{}</p>",
            escape(&format!(
                "Left out: the {} network has no conv2d layer, so there are no kernels or feature maps to show.",
                r.ckpt.config.name
            ))
        );
        return Ok(());
    }
    let filters = visualize::filters_figure(&r.net, 16, 2, None)?;
    let img = page.img(&filters.png, "first layer kernels", "fig pixel");
    let _ = writeln!(
        page.html,
        "<p>{}</p>{img}",
        escape(&format!("Kernels: {}.", filters.description)),
    );
    if r.sets.test.is_empty() {
        return Ok(());
    }
    let maps =
        visualize::feature_maps_figure(&mut r.net, r.sets.test.image(0), r.norm, 4, 2, None)?;
    let label = usize::from(r.sets.test.label(0));
    let img = page.img(&maps.png, "first layer feature maps", "fig pixel");
    let _ = writeln!(
        page.html,
        "<p>{}</p>{img}",
        escape(&format!(
            "Feature maps of test image 0 ({}): {}.",
            r.names
                .get(label)
                .cloned()
                .unwrap_or_else(|| label.to_string()),
            maps.description
        )),
    );
    Ok(())
}

/// The [`MISTAKES`] most confident mistakes, as thumbnails.
pub(crate) fn mistakes(page: &mut Page, r: &RunData) -> Result<()> {
    let shown = r.mistakes.len().min(MISTAKES);
    let _ = writeln!(
        page.html,
        "<h2>The {shown} most confident mistakes</h2>\n<p class=\"note\">{} of {} test images are misclassified; these are the ones the network was surest of.</p>\n<div class=\"mistakes\">",
        r.mistakes.len(),
        r.evaluation.count
    );
    let (rows_px, cols_px) = (r.sets.test.rows(), r.sets.test.cols());
    let name = |c: usize| r.names.get(c).cloned().unwrap_or_else(|| c.to_string());
    for m in r.mistakes.iter().take(MISTAKES) {
        let png = GreyImage {
            width: cols_px,
            height: rows_px,
            pixels: r.sets.test.image(m.index).to_vec(),
        }
        .to_png()?;
        let alt = format!(
            "test image {}, a {} taken for a {}",
            m.index,
            name(m.truth),
            name(m.predicted)
        );
        let img = page.img(&png, &alt, "pixel");
        let _ = writeln!(
            page.html,
            "<div class=\"mistake\">{img}<div>#{}</div><div>true: <b>{}</b></div><div class=\"bad\">predicted: <b>{}</b></div><div>{:.1}%</div></div>",
            m.index,
            escape(&name(m.truth)),
            escape(&name(m.predicted)),
            100.0 * m.confidence
        );
    }
    page.html.push_str("</div>\n");
    Ok(())
}

/// Which program wrote the page, from which run; closes the document.
pub(crate) fn footer(page: &mut Page, r: &RunData) {
    let _ = writeln!(
        page.html,
        "<p class=\"note\">{}</p>\n</body></html>",
        escape(&format!(
            "Written by cnn report {} from {}.",
            env!("CARGO_PKG_VERSION"),
            r.run.display()
        ))
    );
}
