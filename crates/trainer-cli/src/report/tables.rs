//! The report's tables: the post's figures beside ours, every epoch, per
//! class, and the confusion matrix.

use std::fmt::Write as _;

use trainer::eval::Evaluation;
use trainer::metrics::MetricsRow;

use super::html::escape;
use crate::post::POST_TABLE;

/// `v` with `digits` decimals, or a dash when it is missing or not finite.
fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "—".into(),
    }
}

/// The post's table with our figures of the matching epochs beside it.
pub(crate) fn comparison_table(rows: &[MetricsRow]) -> String {
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

/// Every epoch of the run.
pub(crate) fn all_epochs_table(rows: &[MetricsRow]) -> String {
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

/// Images, correct ones and accuracy of each class; below 50% in red.
pub(crate) fn per_class_table(e: &Evaluation, names: &[String]) -> String {
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

/// The confusion matrix, each cell shaded by its share of the row.
pub(crate) fn confusion_table(e: &Evaluation, names: &[String]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
