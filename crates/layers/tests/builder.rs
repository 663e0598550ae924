//! Networks written in code: the builder gives the struct literal's config
//! and the TOML's, and inputs of any rank run forward and backward.

use layers::{
    Conv2dConfig, ConvAlgorithm, LayerConfig, LinearConfig, Loss, Named, NetworkConfig,
    Pool2dConfig,
};
use tensor::{Init, Rng, Tensor};

fn seed_toml() -> NetworkConfig {
    toml::from_str(include_str!("seed.toml")).unwrap()
}

/// The post's network with the builder.
fn seed_builder() -> NetworkConfig {
    let normal = Init::Normal { std: 0.1 };
    NetworkConfig::new([1, 28, 28])
        .conv2d(Conv2dConfig::new(1, 8, 3).pad(1).init(normal))
        .relu()
        .avg_pool2d(2)
        .conv2d(Conv2dConfig::new(8, 16, 3).pad(1).init(normal))
        .relu()
        .avg_pool2d(2)
        .flatten()
        .linear(LinearConfig::new(784, 256).init(normal))
        .relu()
        .linear(LinearConfig::new(256, 10).init(normal))
        .relu()
}

/// A convolution's maps are shown after its ReLU, directly or past its
/// batch norm; a convolution without a ReLU is shown as it is.
#[test]
fn maps_of_conv_is_the_relu_after_a_convolution_or_its_batch_norm() {
    let net = NetworkConfig::new([1, 8, 8])
        .conv2d(Conv2dConfig::new(1, 2, 3).pad(1))
        .relu()
        .conv2d(Conv2dConfig::new(2, 2, 3).pad(1))
        .batch_norm2d(2)
        .relu()
        .conv2d(Conv2dConfig::new(2, 2, 3).pad(1))
        .batch_norm2d(2)
        .conv2d(Conv2dConfig::new(2, 2, 3).pad(1))
        .flatten()
        .linear(LinearConfig::new(128, 10))
        .build(&mut Rng::seed_from_u64(0))
        .unwrap();
    let shown: Vec<usize> = [0, 2, 5, 7].map(|i| net.maps_of_conv(i)).to_vec();
    assert_eq!(shown, vec![1, 4, 5, 7]);
}

#[test]
fn the_builder_gives_the_config_of_the_toml() {
    assert_eq!(seed_builder(), seed_toml());
    assert_eq!(
        toml::to_string(&seed_builder()).unwrap(),
        toml::to_string(&seed_toml()).unwrap()
    );
}

#[test]
fn the_serialised_config_is_unchanged() {
    let stored: String = include_str!("seed_serialized.toml")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(toml::to_string(&seed_builder()).unwrap(), stored);
}

#[test]
fn the_builder_gives_the_struct_literal() {
    let built = NetworkConfig::new([3, 9, 7])
        .conv2d(
            Conv2dConfig::new(3, 4, 5)
                .pad(2)
                .stride(2)
                .init(Init::XavierUniform)
                .bias_init(Init::Uniform { limit: 0.5 })
                .algorithm(ConvAlgorithm::Im2col)
                .name("stem"),
        )
        .layer(LayerConfig::relu().name("act"))
        .max_pool2d(Pool2dConfig::new(3).stride(1).pad(1).name("mp"))
        .sigmoid()
        .avg_pool2d(2)
        .flatten()
        .linear(
            LinearConfig::new(16, 2)
                .init(Init::Zeros)
                .bias_init(Init::HeUniform)
                .name("head"),
        )
        .loss(Loss::Mse);
    let literal = NetworkConfig {
        input: vec![3, 9, 7],
        layers: vec![
            LayerConfig::Conv2d(Conv2dConfig {
                name: Some("stem".into()),
                in_channels: 3,
                out_channels: 4,
                kernel: 5,
                pad: 2,
                stride: 2,
                init: Init::XavierUniform,
                bias_init: Init::Uniform { limit: 0.5 },
                algorithm: ConvAlgorithm::Im2col,
            }),
            LayerConfig::Relu(Named {
                name: Some("act".into()),
            }),
            LayerConfig::MaxPool2d(Pool2dConfig {
                name: Some("mp".into()),
                kernel: 3,
                stride: Some(1),
                pad: 1,
            }),
            LayerConfig::Sigmoid(Named::default()),
            LayerConfig::AvgPool2d(Pool2dConfig {
                name: None,
                kernel: 2,
                stride: None,
                pad: 0,
            }),
            LayerConfig::Flatten(Named::default()),
            LayerConfig::Linear(LinearConfig {
                name: Some("head".into()),
                in_features: Some(16),
                out_features: 2,
                init: Init::Zeros,
                bias_init: Init::HeUniform,
            }),
        ],
        loss: Loss::Mse,
        fuse_relu: true,
    };
    assert_eq!(built, literal);
    assert_eq!(
        toml::to_string(&built).unwrap(),
        toml::to_string(&literal).unwrap()
    );
    let net = built.build(&mut Rng::seed_from_u64(0)).unwrap();
    assert_eq!(
        net.config().layer_names(),
        ["stem", "act", "mp", "sigmoid1", "pool2", "flatten1", "head"]
    );
    assert_eq!(net.output_shapes()[4], [4, 2, 2]);
}

#[test]
fn every_layer_config_can_be_renamed() {
    let layers = [
        LayerConfig::relu(),
        LayerConfig::sigmoid(),
        LayerConfig::flatten(),
        LayerConfig::Conv2d(Conv2dConfig::new(1, 1, 1)),
        LayerConfig::Linear(LinearConfig::new(1, 1)),
        LayerConfig::AvgPool2d(Pool2dConfig::new(2)),
        LayerConfig::MaxPool2d(Pool2dConfig::new(2)),
    ];
    for layer in layers {
        assert_eq!(layer.explicit_name(), None);
        assert_eq!(layer.name("x").explicit_name(), Some("x"));
    }
}

/// An MLP on 20 features takes [N, 20] batches: forward, the label loss,
/// backward, and a few plain gradient steps that lower the loss.
#[test]
fn a_rank_one_input_mlp_trains() {
    let config = NetworkConfig::new([20])
        .linear(LinearConfig::new(20, 16))
        .relu()
        .linear(LinearConfig::new(16, 3));
    let mut net = config.build(&mut Rng::seed_from_u64(1)).unwrap();
    assert_eq!(net.output_shapes(), [vec![16], vec![16], vec![3]]);

    let mut rng = Rng::seed_from_u64(2);
    let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
    // Class c shifts features c*5..c*5+5 up, so the classes are separable.
    let x = Tensor::from_shape_fn(vec![12, 20], |idx| {
        let (n, f) = (idx[0], idx[1]);
        let shift = if f / 5 == labels[n] { 2.0 } else { 0.0 };
        (shift + rng.uniform(-0.5, 0.5)) as f32
    });
    let mut grad = Tensor::zeros(vec![0]);
    let mut losses = Vec::new();
    for _ in 0..30 {
        let logits = net.forward(&x).unwrap();
        assert_eq!(logits.shape(), [12, 3]);
        losses.push(
            config
                .loss
                .with_labels_into(logits, &labels, &mut grad)
                .unwrap(),
        );
        net.backward(&grad).unwrap();
        for p in net.params_mut() {
            assert_eq!(p.grad.shape(), p.value.shape(), "{}", p.name);
            let step = p.grad.clone() * 0.1;
            p.value -= &step;
        }
    }
    assert!(
        losses[29] < losses[0] / 4.0,
        "loss {} -> {}",
        losses[0],
        losses[29]
    );
}

#[test]
fn an_input_of_the_wrong_rank_is_an_error_naming_both_shapes() {
    let mut mlp = NetworkConfig::new([20])
        .linear(LinearConfig::new(20, 3))
        .build(&mut Rng::seed_from_u64(0))
        .unwrap();
    let err = mlp.forward(&Tensor::zeros(vec![5, 1, 20])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input (network): expected a batch [N, 20] of examples of the input shape [20], got [5, 1, 20]"
    );
    let err = mlp.forward(&Tensor::zeros(vec![20])).unwrap_err();
    assert!(err.to_string().ends_with("got [20]"), "{err}");

    let mut cnn = seed_builder().build(&mut Rng::seed_from_u64(0)).unwrap();
    let err = cnn.forward(&Tensor::zeros(vec![2, 784])).unwrap_err();
    assert!(
        err.to_string().contains("[N, 1, 28, 28]") && err.to_string().contains("[2, 784]"),
        "{err}"
    );
}

#[test]
fn an_empty_input_shape_or_a_convolution_on_features_is_refused() {
    let err = NetworkConfig::new(Vec::new())
        .linear(LinearConfig::new(1, 1))
        .build(&mut Rng::seed_from_u64(0))
        .err()
        .unwrap();
    assert!(err.to_string().contains("input shape [] is empty"), "{err}");

    let err = NetworkConfig::new([20])
        .conv2d(Conv2dConfig::new(1, 2, 3))
        .flatten()
        .build(&mut Rng::seed_from_u64(0))
        .err()
        .unwrap();
    assert_eq!((err.index, err.kind), (Some(0), Some("conv2d")));
    assert!(err.to_string().contains("[N, 20]"), "{err}");

    // The TOML form of a feature input.
    let config: NetworkConfig = toml::from_str(
        "input = [4]\n[[layers]]\nkind = \"linear\"\nin_features = 4\nout_features = 2\n",
    )
    .unwrap();
    assert_eq!(
        config,
        NetworkConfig::new([4]).linear(LinearConfig::new(4, 2))
    );
}

/// `algorithm` is read from TOML, written back only when it is not the
/// default `auto` (so configs without it keep their exact text), and a
/// misspelt value names the choices.
#[test]
fn the_conv_algorithm_key() {
    let layer = |extra: &str| {
        format!("input = [1, 6, 6]\n[[layers]]\nkind = \"conv2d\"\nin_channels = 1\nout_channels = 2\nkernel = 3\n{extra}")
    };
    let auto: NetworkConfig = toml::from_str(&layer("")).unwrap();
    let LayerConfig::Conv2d(c) = &auto.layers[0] else {
        panic!("not a conv")
    };
    assert_eq!(c.algorithm, ConvAlgorithm::Auto);
    assert!(!toml::to_string(&auto).unwrap().contains("algorithm"));

    let mut im2col: NetworkConfig = toml::from_str(&layer("algorithm = \"im2col\"")).unwrap();
    let LayerConfig::Conv2d(c) = &im2col.layers[0] else {
        panic!("not a conv")
    };
    assert_eq!(c.algorithm, ConvAlgorithm::Im2col);
    assert!(toml::to_string(&im2col)
        .unwrap()
        .contains("algorithm = \"im2col\""));
    im2col.set_conv_algorithm(ConvAlgorithm::Auto);
    assert_eq!(im2col, auto);

    let err = toml::from_str::<NetworkConfig>(&layer("algorithm = \"fft\""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fft") && err.contains("im2col") && err.contains("direct"),
        "{err}"
    );
}
