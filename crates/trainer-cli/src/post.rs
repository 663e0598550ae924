//! What the HTML report (`report`), the results page (`results_md`) and the
//! seed table (`seed_table`) all say: the post's figures, how a run's train
//! figures were made, and counted nouns. It imports none of them.

/// The post's table: (epoch, train loss, test loss, train accuracy %, test accuracy %).
pub(crate) const POST_TABLE: [(u32, f64, f64, f64, f64); 11] = [
    (0, 0.1224, 0.1495, 96.23, 95.14),
    (10, 0.0341, 0.0400, 98.89, 98.54),
    (20, 0.0149, 0.0355, 99.49, 98.92),
    (30, 0.0117, 0.0342, 99.69, 98.93),
    (40, 0.0075, 0.0351, 99.77, 98.85),
    (50, 0.0049, 0.0365, 99.89, 98.88),
    (60, 0.0037, 0.0343, 99.94, 98.99),
    (70, 0.0029, 0.0322, 99.97, 98.97),
    (80, 0.0024, 0.0322, 99.98, 99.03),
    (90, 0.0023, 0.0313, 99.98, 99.02),
    (100, 0.0022, 0.0307, 99.99, 99.10),
];

/// How a run's train figures were made, in a sentence.
pub(crate) fn train_figures(eval_train: bool) -> &'static str {
    if eval_train {
        "Train figures are a full pass over the training set after each epoch (`--eval-train`), as the post's are."
    } else {
        "Train figures are running means over each epoch's batches, taken while the weights change \
         (the run was trained without `--eval-train`); the post's are full passes after the epoch, \
         so they run higher than ours early on."
    }
}

/// `n thing` or `n things`.
pub fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_or_plural() {
        assert_eq!(plural(1, "epoch"), "1 epoch");
        assert_eq!(plural(0, "epoch"), "0 epochs");
        assert_eq!(plural(20, "image"), "20 images");
    }
}
