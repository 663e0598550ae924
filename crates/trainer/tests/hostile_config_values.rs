//! Hostile config values, class "configs": every field of every built-in
//! config given an arbitrary TOML value (NaN, infinities, negatives, huge
//! numbers, strings, arrays, tables). Loading never panics; a refusal names
//! the key; a config that passes its checks trains a step (batch norm
//! included) with a finite, non-negative learning rate at every epoch, and
//! a fixed-length array given extra values is refused rather than cut.

use mnist_io::Dataset;
use optim::Optimizer;
use proptest::prelude::*;
use toml::Value;
use trainer::batch::DatasetBatch;
use trainer::config::{TrainConfig, BUILTIN};

/// A step of a path into a TOML document.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every leaf of `v` (numbers, strings, booleans, and each array element).
fn leaves(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Table(t) => t.iter().for_each(|(k, v)| {
            path.push(Seg::Key(k.clone()));
            leaves(v, path, out);
            path.pop();
        }),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| {
            path.push(Seg::Index(i));
            leaves(v, path, out);
            path.pop();
        }),
        _ => out.push(path.clone()),
    }
}

fn at<'a>(v: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Seg::Key(k) => &mut v.as_table_mut().unwrap()[k.as_str()],
        Seg::Index(i) => &mut v.as_array_mut().unwrap()[*i],
    })
}

/// The last key of a path: what a refusal must name.
fn key(path: &[Seg]) -> &str {
    named(path)[0]
}

/// The keys of a path, last first.
fn named(path: &[Seg]) -> Vec<&str> {
    path.iter()
        .rev()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect()
}

/// What a refusal must name: the key, or for the `kind` of an inline table
/// (`init = { kind = ... }`) that table's key.
fn names_key(msg: &str, path: &[Seg]) -> bool {
    let keys = named(path);
    // A size that no longer chains is reported at the layer that receives
    // it, with both shapes.
    let shapes = [
        "in_channels",
        "out_channels",
        "in_features",
        "out_features",
        "num_features",
        "kernel",
        "stride",
        "pad",
        "input",
    ];
    let chain = shapes.contains(&keys[0])
        && ["layer", "parameters", "batch"]
            .iter()
            .any(|w| msg.contains(w));
    chain || msg.contains(keys[0]) || (keys[0] == "kind" && keys.len() > 1 && msg.contains(keys[1]))
}

fn documents() -> Vec<(&'static str, Value, Vec<Vec<Seg>>)> {
    BUILTIN
        .iter()
        .map(|(name, text)| {
            let doc: Value = toml::from_str(text).unwrap();
            let mut out = Vec::new();
            leaves(&doc, &mut Vec::new(), &mut out);
            // The name and description are free text.
            out.retain(|p| !matches!(key(p), "name" | "description"));
            (*name, doc, out)
        })
        .collect()
}

fn hostile_value() -> impl Strategy<Value = Value> {
    let floats = prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(-1.0),
        Just(1e-45),
        Just(1e30),
        Just(-1e30),
        Just(0.5),
        Just(2.0),
        any::<f64>(),
    ];
    prop_oneof![
        floats.prop_map(Value::Float),
        (-3i64..300).prop_map(Value::Integer),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(1 << 40), Just(-1)]
            .prop_map(Value::Integer),
        "[a-z_]{0,12}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Boolean),
        prop::collection::vec((-2i64..40).prop_map(Value::Integer), 0..5).prop_map(Value::Array),
        Just(Value::Table(Default::default())),
    ]
}

/// Loads `doc` as a user's file would be; a refusal must name `key`. A
/// config that loads trains one step on two made-up images.
fn load_and_try(name: &str, doc: &Value, path: &[Seg]) -> Result<(), TestCaseError> {
    let key = key(path);
    let text = toml::to_string(doc).unwrap();
    let config = match TrainConfig::parse(&text, name).and_then(|c| c.check().map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("{e:#}");
            prop_assert!(names_key(&msg, path), "{name}: `{key}` not named in: {msg}");
            return Ok(());
        }
    };
    let (base, epochs) = (config.optimizer.lr(), config.training.epochs.min(500));
    for e in 0..epochs {
        let lr = config.schedule.lr(base, e, config.training.epochs);
        prop_assert!(
            lr.is_finite() && lr >= 0.0,
            "{name}: `{key}`: epoch {e} has lr {lr}"
        );
    }
    if config.network.param_count().unwrap() > 3_000_000 {
        return Ok(());
    }
    let mut net = config.build_network().unwrap();
    let bad = trainer::step::first_non_finite(&net);
    prop_assert!(
        bad.is_none(),
        "{name}: `{key}`: initial weights of {bad:?} are not finite"
    );
    let Ok([c, h, w]) = <[usize; 3]>::try_from(config.network.input.clone()) else {
        return Ok(());
    };
    if c != 1 || h * w > 4096 {
        return Ok(());
    }
    let n = 4;
    let pixels = (0..n * h * w).map(|i| (i * 37 % 256) as u8).collect();
    let set = Dataset::from_parts(pixels, (0..n as u8).collect(), h, w).unwrap();
    let Ok(normalize) = config.normalize(&set) else {
        return Ok(());
    };
    let batch = DatasetBatch {
        data: &set,
        indices: &[0, 1, 2, 3],
        normalize,
        augment: None,
    };
    let mut optimizer = Optimizer::new(config.optimizer.clone());
    let result = trainer::step::step(&mut net, &config.loss_fn(), &batch, 2, 0, &mut optimizer);
    if let Ok(r) = result {
        prop_assert!(r.loss.is_finite(), "{name}: `{key}`: loss {}", r.loss);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// 256 configs: one field of one built-in config given a hostile value.
    #[test]
    fn any_value_in_any_field_is_checked_naming_its_key(
        which in 0..BUILTIN.len(),
        field in any::<prop::sample::Index>(),
        value in hostile_value(),
    ) {
        let (name, mut doc, paths) = documents().swap_remove(which);
        let path = field.get(&paths);
        *at(&mut doc, path) = value;
        load_and_try(name, &doc, path)?;
    }
}

/// The configs' one array of fixed length, `input_mean_std` (`input` is a
/// shape of any rank), given one value too many or too few on every
/// built-in config: refused naming the key, never cut to length.
#[test]
fn arrays_of_fixed_length_refuse_extra_values() {
    for (name, text) in BUILTIN {
        for values in [&[0.1, 0.3, 0.5][..], &[0.1], &[]] {
            let mut doc: Value = toml::from_str(text).unwrap();
            let training = doc["training"].as_table_mut().unwrap();
            let array = values.iter().map(|&v| Value::Float(v)).collect();
            training.insert("input_mean_std".into(), Value::Array(array));
            training.insert("input_scaling".into(), "standardized".into());
            let err = TrainConfig::parse(&toml::to_string(&doc).unwrap(), name).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains("input_mean_std") && msg.contains("two numbers"),
                "{name}: {msg}"
            );
        }
    }
}
