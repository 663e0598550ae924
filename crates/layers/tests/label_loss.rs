//! The loss against class labels gives the bits of the loss against their
//! one-hot rows, for every loss kind, and refuses labels it cannot take.

use layers::{one_hot_into, Loss};
use proptest::prelude::*;
use tensor::Tensor;

const KINDS: [Loss; 3] = [
    Loss::SoftmaxCrossEntropy,
    Loss::Mse,
    Loss::SigmoidBinaryCrossEntropy,
];

/// Ordinary logits, huge ones, and any f32 at all (infinities, NaN, subnormals).
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -30.0f32..30.0,
        1 => -1e4f32..1e4,
        1 => prop::num::f32::ANY,
    ]
}

/// Logits of N x K and N labels below K.
fn case() -> impl Strategy<Value = (Tensor, Vec<usize>)> {
    (0usize..9, 1usize..13).prop_flat_map(|(n, k)| {
        (
            prop::collection::vec(value(), n * k),
            prop::collection::vec(0..k, n),
        )
            .prop_map(move |(v, labels)| (Tensor::from_shape_vec(vec![n, k], v).unwrap(), labels))
    })
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.iter().map(|v| v.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn labels_give_the_bits_of_one_hot_targets((logits, labels) in case()) {
        let k = logits.shape()[1];
        let mut target = Tensor::zeros(vec![0]);
        one_hot_into(&labels, k, &mut target);
        // A reused buffer of another shape, as in a training loop.
        let mut reused = Tensor::zeros(vec![3, 1]);
        for loss in KINDS {
            let mut grad = Tensor::zeros(vec![0]);
            let want = loss.forward_backward(&logits, &target, &mut grad).unwrap();
            let (got, got_grad) = loss.with_labels(&logits, &labels).unwrap();
            prop_assert_eq!(got.to_bits(), want.to_bits(), "{} loss", loss.name());
            prop_assert_eq!(got_grad.shape(), grad.shape());
            prop_assert_eq!(bits(&got_grad), bits(&grad), "{} gradient", loss.name());

            let got = loss.with_labels_into(&logits, &labels, &mut reused).unwrap();
            prop_assert_eq!(got.to_bits(), want.to_bits(), "{} loss, into", loss.name());
            prop_assert_eq!(reused.shape(), grad.shape());
            prop_assert_eq!(bits(&reused), bits(&grad), "{} gradient, into", loss.name());
        }
    }
}

#[test]
fn a_label_out_of_range_is_an_error_naming_the_loss_label_and_classes() {
    let logits = Tensor::zeros(vec![3, 10]);
    for loss in KINDS {
        let err = loss.with_labels(&logits, &[1, 10, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "loss ({}): label 10 (row 1) is out of range for 10 classes",
                loss.name()
            )
        );
        let mut grad = Tensor::zeros(vec![0]);
        let err = loss
            .with_labels_into(&logits, &[usize::MAX, 0, 0], &mut grad)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("label {} (row 0)", usize::MAX)),
            "{err}"
        );
    }
}

#[test]
fn labels_must_match_the_rows_and_the_output_must_be_a_matrix() {
    let loss = Loss::SoftmaxCrossEntropy;
    let err = loss
        .with_labels(&Tensor::zeros(vec![3, 10]), &[1, 2])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "loss (softmax_cross_entropy): 2 labels for an output of 3 rows [3, 10]"
    );
    let err = loss
        .with_labels(&Tensor::zeros(vec![2, 1, 10]), &[1, 2])
        .unwrap_err();
    assert!(
        err.to_string().contains("expected output [N, classes]"),
        "{err}"
    );
}
