//! Wrong shapes and bad configs are errors that name the layer and both shapes, never panics.

use layers::{Conv2dConfig, Layer, LinearConfig, NetworkConfig};
use tensor::{Rng, Tensor};

fn seed_toml() -> String {
    include_str!("seed.toml").to_string()
}

#[test]
fn wrong_channel_count_into_conv2d() {
    let mut conv = Conv2dConfig::new(8, 16, 3).build("conv2", &mut Rng::seed_from_u64(0));
    let err = conv
        .forward(&Tensor::zeros(vec![4, 1, 28, 28]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv2") && err.contains("[N, 8, H, W]") && err.contains("[4, 1, 28, 28]"),
        "{err}"
    );
}

#[test]
fn wrong_feature_count_into_linear() {
    let mut fc = LinearConfig::new(784, 256).build("fc1", &mut Rng::seed_from_u64(0));
    let err = fc
        .forward(&Tensor::zeros(vec![2, 100]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fc1") && err.contains("[N, 784]") && err.contains("[2, 100]"),
        "{err}"
    );
    let err = fc
        .forward(&Tensor::zeros(vec![2, 16, 7, 7]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("flatten"),
        "a 4-D input should suggest a flatten layer: {err}"
    );
}

#[test]
fn backward_before_forward_is_an_error() {
    let mut conv = Conv2dConfig::new(1, 2, 3).build("conv1", &mut Rng::seed_from_u64(0));
    assert!(conv.backward(&Tensor::zeros(vec![1, 2, 3, 3])).is_err());
}

#[test]
fn config_whose_shapes_do_not_chain() {
    // conv2 declares 4 input channels, conv1 makes 8.
    let text = seed_toml().replacen("in_channels = 8", "in_channels = 4", 1);
    let cfg: NetworkConfig = toml::from_str(&text).unwrap();
    let err = cfg
        .build(&mut Rng::seed_from_u64(0))
        .err()
        .expect("must not build");
    assert_eq!(err.index, Some(3));
    assert_eq!(err.kind, Some("conv2d"));
    let msg = err.to_string();
    assert!(
        msg.contains("conv2") && msg.contains("[N, 4, H, W]") && msg.contains("[N, 8, 14, 14]"),
        "{msg}"
    );

    // fc1 declares 800 inputs, the flatten gives 784.
    let text = seed_toml().replacen("in_features = 784", "in_features = 800", 1);
    let err = toml::from_str::<NetworkConfig>(&text)
        .unwrap()
        .build(&mut Rng::seed_from_u64(0))
        .err()
        .unwrap();
    assert_eq!((err.index, err.kind), (Some(7), Some("linear")));
    // Numbered as the network table numbers it: fc1 is row 8.
    assert!(err.to_string().contains("layer 8 (linear)"), "{err}");
    let seed = toml::from_str::<NetworkConfig>(&seed_toml())
        .unwrap()
        .build(&mut Rng::seed_from_u64(0))
        .unwrap();
    let row = seed.summary();
    let row = row.lines().find(|l| l.contains(" fc1 ")).unwrap();
    assert!(row.starts_with("8 "), "{row}");
    assert!(
        err.to_string().contains("[N, 800]") && err.to_string().contains("[N, 784]"),
        "{err}"
    );

    // Ending on a feature map: the loss needs a vector.
    let cfg = NetworkConfig {
        layers: cfg_layers(&seed_toml())[..6].to_vec(),
        ..toml::from_str(&seed_toml()).unwrap()
    };
    let err = cfg.build(&mut Rng::seed_from_u64(0)).err().unwrap();
    assert!(err.to_string().contains("[16, 7, 7]"), "{err}");
}

fn cfg_layers(text: &str) -> Vec<layers::LayerConfig> {
    toml::from_str::<NetworkConfig>(text).unwrap().layers
}

#[test]
fn unknown_kinds_fields_and_missing_fields_are_refused_by_the_parser() {
    let unknown_kind = seed_toml().replacen("kind = \"relu\"", "kind = \"relu6\"", 1);
    let err = toml::from_str::<NetworkConfig>(&unknown_kind)
        .unwrap_err()
        .to_string();
    assert!(err.contains("relu6"), "{err}");

    let typo = seed_toml().replacen("pad = 1", "padd = 1", 1);
    let err = toml::from_str::<NetworkConfig>(&typo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("padd"), "{err}");

    let missing = seed_toml().replacen("out_channels = 8\n", "", 1);
    let err = toml::from_str::<NetworkConfig>(&missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("out_channels"), "{err}");
}

#[test]
fn duplicate_names_are_refused() {
    let text = seed_toml().replacen("kind = \"relu\"", "kind = \"relu\"\nname = \"conv1\"", 1);
    let err = toml::from_str::<NetworkConfig>(&text)
        .unwrap()
        .build(&mut Rng::seed_from_u64(0))
        .err()
        .unwrap();
    assert_eq!(err.index, Some(1));
    assert!(err.to_string().contains("conv1"), "{err}");
}

#[test]
fn config_round_trips_through_toml() {
    let cfg: NetworkConfig = toml::from_str(&seed_toml()).unwrap();
    let again: NetworkConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(cfg, again);
}

#[test]
fn loading_parameters_checks_names_and_shapes() {
    let cfg: NetworkConfig = toml::from_str(&seed_toml()).unwrap();
    let mut a = cfg.build(&mut Rng::seed_from_u64(1)).unwrap();
    let b = cfg.build(&mut Rng::seed_from_u64(2)).unwrap();
    let mut params = b.state_dict();
    a.load_state_dict(&params).unwrap();
    assert_eq!(a.state_dict(), params);

    params.insert("conv1.weight".into(), Tensor::zeros(vec![8, 1, 5, 5]));
    let err = a.load_state_dict(&params).unwrap_err().to_string();
    assert!(
        err.contains("conv1.weight") && err.contains("[8, 1, 5, 5]"),
        "{err}"
    );
    params.remove("conv1.weight");
    let err = a.load_state_dict(&params).unwrap_err().to_string();
    assert!(
        err.contains("missing") && err.contains("conv1.weight"),
        "{err}"
    );
    let mut extra = b.state_dict();
    extra.insert("fc9.bias".into(), Tensor::zeros(vec![3]));
    let err = a.load_state_dict(&extra).unwrap_err().to_string();
    assert!(err.contains("fc9.bias"), "{err}");
}

#[test]
fn network_is_bit_identical_on_any_thread_count() {
    let cfg: NetworkConfig = toml::from_str(&seed_toml()).unwrap();
    let mut rng = Rng::seed_from_u64(3);
    let x = Tensor::from_shape_fn(vec![17, 1, 28, 28], |_| rng.uniform(0.0, 1.0) as f32);
    let labels: Vec<usize> = (0..17).map(|i| i % 10).collect();
    let run = || {
        let mut net = cfg.build(&mut Rng::seed_from_u64(5)).unwrap();
        let y = net.forward(&x).unwrap().clone();
        let mut t = Tensor::zeros(vec![0]);
        layers::one_hot_into(&labels, 10, &mut t);
        let mut g = Tensor::zeros(vec![0]);
        let loss = cfg.loss.forward_backward(&y, &t, &mut g).unwrap();
        net.backward(&g).unwrap();
        let mut bits = vec![loss.to_bits()];
        net.params()
            .into_iter()
            .for_each(|p| bits.extend(p.grad.iter().map(|v| v.to_bits() as u64)));
        bits
    };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(run);
    for t in 2..=4 {
        let other = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(run);
        assert!(one == other, "{t} threads differ from 1");
    }
}

/// Zero sizes and parameter counts that overflow are found from the config
/// alone, before any weight is allocated.
#[test]
fn sizes_are_checked_before_any_weight_is_allocated() {
    use layers::{Conv2dConfig, LinearConfig, NetworkConfig};
    let huge = NetworkConfig::new([4])
        .linear(LinearConfig::new(usize::MAX / 2, 4))
        .linear(LinearConfig::new(4, 2));
    let err = huge.param_count().unwrap_err().to_string();
    assert!(
        err.contains("layer 1 (linear)") && err.contains("64 bits"),
        "{err}"
    );
    // build() checks first: it fails at once instead of asking for 2^64 floats.
    assert!(huge.build(&mut tensor::Rng::seed_from_u64(1)).is_err());

    let zero = NetworkConfig::new([1, 8, 8]).conv2d(Conv2dConfig::new(1, 0, 3));
    let err = zero.param_count().unwrap_err().to_string();
    assert!(err.contains("`out_channels` is 0"), "{err}");

    let seed = NetworkConfig::new([1, 28, 28])
        .conv2d(Conv2dConfig::new(1, 8, 3).pad(1))
        .linear(LinearConfig::new(10, 2));
    assert_eq!(seed.param_count().unwrap(), 8 * 9 + 8 + 10 * 2 + 2);
}
