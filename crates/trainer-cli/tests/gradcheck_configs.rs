//! `cnn gradcheck` on every built-in config passes: the check runs on whole
//! activations (12,544 values for the first layer's output), where the inputs
//! lie closer together than ε, and must not report false failures. Seeds 1-5
//! keep the debug-build test to seconds (before kinks were skipped, 4 of
//! these 15 runs failed); `cnn gradcheck --config NAME --seed S` covers any other.

use trainer::config::{TrainConfig, BUILTIN};
use trainer_cli::gradcheck_cmd::{run, table};

fn passes_for_seeds_1_to_5(name: &str) {
    let config = TrainConfig::load(name).unwrap();
    for seed in 1..=5 {
        let reports = run(&config, 2, seed).unwrap();
        let (text, ok) = table(&reports, 1e-2);
        assert!(ok, "config {name}, seed {seed}:\n{text}");
        assert_eq!(reports.len(), config.network.layers.len() + 1, "{text}");
    }
}

#[test]
fn seed_config() {
    passes_for_seeds_1_to_5("seed");
}

#[test]
fn mlp_config() {
    passes_for_seeds_1_to_5("mlp");
}

#[test]
fn improved_config() {
    passes_for_seeds_1_to_5("improved");
}

#[test]
fn modern_config() {
    passes_for_seeds_1_to_5("modern");
}

#[test]
fn every_built_in_config_is_covered() {
    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["seed", "mlp", "improved", "modern"],
        "add a test above for each new config"
    );
}
