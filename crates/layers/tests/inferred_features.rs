//! A linear layer's in-features may be left out: the network counts them
//! from the shape before the layer, with the same weights as when they are given.

use layers::{Conv2dConfig, LinearConfig, NetworkConfig};
use tensor::Rng;

fn convnet(head: LinearConfig) -> NetworkConfig {
    NetworkConfig::new([1, 8, 8])
        .conv2d(Conv2dConfig::new(1, 4, 3).pad(1))
        .relu()
        .max_pool2d(2)
        .flatten()
        .linear(head)
}

#[test]
fn omitted_in_features_are_counted_and_give_the_same_network() {
    let given = convnet(LinearConfig::new(4 * 4 * 4, 3));
    let counted = convnet(LinearConfig::outputs(3));
    assert_eq!(counted.param_count().unwrap(), given.param_count().unwrap());
    assert_eq!(counted.with_inferred_sizes().unwrap().into_owned(), given);
    let a = given.build(&mut Rng::seed_from_u64(5)).unwrap();
    let b = counted.build(&mut Rng::seed_from_u64(5)).unwrap();
    assert_eq!(a.state_dict(), b.state_dict());
    // `.linear(3)` means the same.
    assert_eq!(
        NetworkConfig::new([1, 8, 8])
            .conv2d(Conv2dConfig::new(1, 4, 3).pad(1))
            .relu()
            .max_pool2d(2)
            .flatten()
            .linear(3),
        counted
    );
}

#[test]
fn omitted_in_features_are_left_out_of_toml_and_read_back() {
    let counted = NetworkConfig::new([20]).linear(8).relu().linear(2);
    let text = toml::to_string(&counted).unwrap();
    assert!(!text.contains("in_features"), "{text}");
    let back: NetworkConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, counted);
    assert_eq!(back.param_count().unwrap(), 20 * 8 + 8 + 8 * 2 + 2);
}

#[test]
fn wrong_in_features_and_a_missing_flatten_are_still_errors() {
    let wrong = convnet(LinearConfig::new(50, 3));
    let err = wrong
        .build(&mut Rng::seed_from_u64(0))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("expected input [N, 50], got [N, 64]"), "{err}");

    let no_flatten = NetworkConfig::new([1, 8, 8])
        .conv2d(Conv2dConfig::new(1, 4, 3))
        .linear(3);
    let err = no_flatten.param_count().unwrap_err().to_string();
    assert!(err.contains("add a flatten layer before it"), "{err}");
}
