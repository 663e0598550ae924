//! `OptimizerConfig::check` accepts the seed's settings and refuses each
//! out-of-range one, naming its key.

use optim::OptimizerConfig;

#[test]
fn settings_out_of_range_are_refused_by_name() {
    assert_eq!(OptimizerConfig::sgd(0.01, 0.9, 1e-4).check(), Ok(()));
    assert_eq!(OptimizerConfig::sgd(0.01, 0.0, 0.0).check(), Ok(()));
    for (config, key) in [
        (OptimizerConfig::sgd(0.0, 0.9, 1e-4), "lr"),
        (OptimizerConfig::sgd(f32::NAN, 0.9, 1e-4), "lr"),
        (OptimizerConfig::sgd(0.01, 1.0, 1e-4), "momentum"),
        (OptimizerConfig::sgd(0.01, -0.1, 1e-4), "momentum"),
        (OptimizerConfig::sgd(0.01, 0.9, -1e-4), "weight_decay"),
        (
            OptimizerConfig::sgd(0.01, 0.9, f32::INFINITY),
            "weight_decay",
        ),
    ] {
        let err = config.check().expect_err(key);
        assert!(err.starts_with(key), "{key}: {err}");
    }
}
