//! The test images a network gets wrong, most confident first (the report's
//! last section, and `cnn serve`'s list of mistakes).

use anyhow::Result;
use layers::Network;
use mnist_io::Dataset;
use trainer::eval::Evaluation;

/// How many mistakes the page shows.
pub const MISTAKES: usize = 25;

/// A misclassified test image.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mistake {
    /// Index in the test set.
    pub(crate) index: usize,
    /// True class.
    pub(crate) truth: usize,
    /// Predicted class.
    pub(crate) predicted: usize,
    /// Probability of the predicted class.
    pub(crate) confidence: f32,
}

/// One pass over `ds`: the figures of [`trainer::eval::evaluate`] and every
/// mistake, most confident first.
pub(crate) fn evaluate_with_mistakes(
    net: &mut Network,
    ds: &Dataset,
    batch: usize,
    norm: Option<mnist_io::Normalize>,
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
