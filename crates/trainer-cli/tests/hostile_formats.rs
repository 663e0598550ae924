//! Hostile files, format by format: whatever the bytes, the readers return
//! a value or an error naming the file; they never panic, and nothing is
//! allocated beyond what the file's size or a stated limit allows. The
//! checkpoint cases are resealed (a correct checksum over a hostile body):
//! the checksum detects damage, not forgery.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use trainer::checkpoint::Checkpoint;
use trainer::config::TrainConfig;
use trainer::files::CHECKPOINT_MAGIC;
use trainer::metrics::{parse_metrics, plottable};
use trainer::safetensors_io::{from_bytes, network_from, to_bytes};
use trainer_cli::image_io::{decode_png_grey, GreyImage};
use trainer_cli::plot::{render, Format};

/// A small network's checkpoint: the MLP with a 16-unit hidden layer.
fn small_checkpoint() -> Checkpoint {
    let text = TrainConfig::load("mlp")
        .unwrap()
        .to_toml()
        .replace("out_features = 256", "out_features = 16")
        .replace("in_features = 256", "in_features = 16");
    let config = TrainConfig::from_toml(&text, "small").unwrap();
    let net = config.build_network().unwrap();
    trainer::safetensors_io::fresh_checkpoint(&config, None, &net)
}

/// A checkpoint file around `body`, with a correct length and checksum.
fn sealed(body: &[u8]) -> Vec<u8> {
    let mut out = CHECKPOINT_MAGIC.to_vec();
    out.extend(1u32.to_le_bytes());
    out.extend((body.len() as u64).to_le_bytes());
    out.extend(body);
    out.extend(Sha256::digest(body));
    out
}

fn body_of(ckpt: &Checkpoint) -> Vec<u8> {
    ckpt.to_bytes()[20..ckpt.to_bytes().len() - 32].to_vec()
}

/// Loads a checkpoint's bytes as every command does: parse, then build the network.
fn load_all_the_way(bytes: &[u8]) -> Result<(), String> {
    let path = Path::new("hostile.ckpt");
    let ckpt = Checkpoint::from_bytes(bytes, path).map_err(|e| format!("{e:#}"))?;
    ckpt.network().map(|_| ()).map_err(|e| format!("{e:#}"))
}

#[test]
fn a_resealed_checkpoint_describing_a_huge_network_is_refused_before_building_it() {
    let mut ckpt = small_checkpoint();
    // 10^12 weights in the config, and a limit raised to allow them: the
    // few stored weights give the lie away before anything is allocated.
    ckpt.body.config_toml = ckpt
        .body
        .config_toml
        .replace("out_features = 16", "out_features = 1000000000")
        .replace("in_features = 16", "in_features = 1000000000")
        .replace(
            "micro_batch = 25",
            "micro_batch = 25\nmax_params = 9000000000000000000",
        );
    let err = load_all_the_way(&sealed(&body_of(&ckpt))).unwrap_err();
    assert!(
        err.contains("hostile.ckpt") && err.contains("parameters"),
        "{err}"
    );
}

#[test]
fn a_resealed_checkpoint_with_a_non_finite_or_misshapen_tensor_is_refused_naming_it() {
    let mut ckpt = small_checkpoint();
    ckpt.body.params[1].data[3] = f32::NAN;
    let err = load_all_the_way(&sealed(&body_of(&ckpt))).unwrap_err();
    assert!(
        err.contains("hostile.ckpt")
            && err.contains(&ckpt.body.params[1].name)
            && err.contains("NaN"),
        "{err}"
    );
    let mut ckpt = small_checkpoint();
    ckpt.body.params[0].shape = vec![u64::MAX, u64::MAX];
    let err = load_all_the_way(&sealed(&body_of(&ckpt))).unwrap_err();
    assert!(err.contains(&ckpt.body.params[0].name), "{err}");
}

/// The modern network (batch norm) as a checkpoint, and the index of `name` among its tensors.
fn modern_checkpoint() -> Checkpoint {
    let config = TrainConfig::load("modern").unwrap();
    let net = config.build_network().unwrap();
    trainer::safetensors_io::fresh_checkpoint(&config, None, &net)
}

#[test]
fn impossible_buffer_values_are_refused_from_checkpoints_and_weights_files() {
    for (suffix, value, says) in [
        ("running_var", -0.5, "a variance is never negative"),
        ("num_batches_tracked", -3.0, "a count is a whole number"),
        ("num_batches_tracked", 2.5, "a count is a whole number"),
    ] {
        let mut ckpt = modern_checkpoint();
        let i = ckpt
            .body
            .params
            .iter()
            .position(|t| t.name.ends_with(suffix))
            .unwrap();
        let name = ckpt.body.params[i].name.clone();
        ckpt.body.params[i].data[0] = value;
        let err = load_all_the_way(&sealed(&body_of(&ckpt))).unwrap_err();
        assert!(err.contains(&name) && err.contains(says), "{err}");

        // The same tensors as a safetensors file (which stores counts as
        // int64: 2.5 cannot be written there).
        if value.fract() != 0.0 {
            continue;
        }
        let mut tensors = ckpt.network().map(|n| n.state_dict()).unwrap_or_default();
        if tensors.is_empty() {
            let good = modern_checkpoint();
            tensors = good.network().unwrap().state_dict();
            tensors
                .get_mut(&name)
                .unwrap()
                .iter_mut()
                .for_each(|v| *v = value);
        }
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = to_bytes(&tensors, &meta).unwrap();
        from_bytes(&bytes, Path::new("w.safetensors")).unwrap();
        let config = TrainConfig::load("modern").unwrap();
        let Err(err) = network_from(&config, &bytes, Path::new("w.safetensors")) else {
            panic!("{name} = {value} accepted from a weights file");
        };
        let err = format!("{err:#}");
        assert!(err.contains(&name) && err.contains(says), "{err}");
    }
}

#[test]
fn a_stored_config_over_its_limit_is_refused_before_it_is_decoded() {
    let mut ckpt = small_checkpoint();
    ckpt.body.config_toml.push_str(&"#".repeat(2 << 20));
    let err = load_all_the_way(&sealed(&body_of(&ckpt))).unwrap_err();
    assert!(
        err.contains("stored config is") && err.contains("1 MiB"),
        "{err}"
    );
    // A varint claiming 2^64 - 1 bytes.
    let mut body = vec![253];
    body.extend(u64::MAX.to_le_bytes());
    let err = load_all_the_way(&sealed(&body)).unwrap_err();
    assert!(
        err.contains("stored config is 18446744073709551615 bytes"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random edits of a valid body, resealed: an error or a network, never a panic.
    #[test]
    fn resealed_checkpoint_bodies_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let mut body = body_of(&small_checkpoint());
        for (at, byte, how) in edits {
            let i = at.index(body.len());
            match how {
                0 => body[i] = byte,
                1 => body[i] ^= 1 << (byte % 8),
                2 => body.insert(i, byte),
                _ => body.truncate(i.max(1)),
            }
        }
        let _ = load_all_the_way(&sealed(&body));
    }

    /// The config text inside a resealed body, with a random size in a random layer field.
    #[test]
    fn resealed_configs_with_any_sizes_never_panic(
        field in prop::sample::select(vec!["in_features = 784", "out_features = 16", "in_features = 16", "out_features = 10", "input = [1, 28, 28]"]),
        value in prop_oneof![0u64..4, 1u64..100_000, Just(i64::MAX as u64), any::<u32>().prop_map(u64::from)],
    ) {
        let mut ckpt = small_checkpoint();
        let replacement = match field {
            "input = [1, 28, 28]" => format!("input = [1, {value}, 28]"),
            f => format!("{} = {value}", f.split(" = ").next().unwrap()),
        };
        ckpt.body.config_toml = ckpt.body.config_toml.replace(field, &replacement);
        let _ = load_all_the_way(&sealed(&body_of(&ckpt)));
    }

    /// Config files with any layer sizes, kernel, stride, padding and batch:
    /// checked (and refused when too large) without building anything large.
    #[test]
    fn configs_with_any_sizes_never_panic(
        sizes in prop::collection::vec(prop_oneof![Just(0i64), 1i64..64, 1i64..100_000, Just(i64::MAX), any::<u32>().prop_map(i64::from)], 8),
    ) {
        let s = |i: usize| sizes[i];
        let text = format!(
            "name = \"x\"\n[training]\nepochs = 1\nbatch = {}\nseed = 1\n[optimizer]\nkind = \"sgd\"\nlr = 0.1\n\
             [network]\ninput = [1, {}, {}]\n\
             [[network.layers]]\nkind = \"conv2d\"\nin_channels = 1\nout_channels = {}\nkernel = {}\npad = {}\nstride = {}\n\
             [[network.layers]]\nkind = \"max_pool2d\"\nkernel = {}\n\
             [[network.layers]]\nkind = \"flatten\"\n\
             [[network.layers]]\nkind = \"linear\"\nin_features = 100\nout_features = 10\n",
            s(0), s(1), s(2), s(3), s(4), s(5), s(6), s(7)
        );
        if let Ok(config) = TrainConfig::from_toml(&text, "fuzz.toml") {
            prop_assert!(config.network.param_count().unwrap() <= config.training.max_params);
        }
    }

    /// Safetensors files with a random header (dtype, shape, offsets, metadata).
    #[test]
    fn safetensors_headers_never_panic(
        dtype in prop::sample::select(vec!["F32", "F64", "U8", "BOOL", "F16", "X"]),
        shape in prop::collection::vec(prop_oneof![0u64..20, Just(u64::MAX), Just(1u64 << 40)], 0..4),
        start in prop_oneof![0u64..64, Just(u64::MAX)],
        end in prop_oneof![0u64..64, Just(u64::MAX)],
        declared in prop_oneof![Just(None), (0u64..400).prop_map(Some), Just(Some(u64::MAX))],
        config in prop::option::of(prop::sample::select(vec!["name = 'x'", "not toml [", ""])),
    ) {
        let shape: Vec<String> = shape.iter().map(u64::to_string).collect();
        let meta = config.map(|c| format!(",\"__metadata__\":{{\"cnn.config\":{c:?}}}")).unwrap_or_default();
        let header = format!(
            "{{\"fc1.weight\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{start},{end}]}}{meta}}}",
            shape.join(",")
        );
        let mut bytes = declared.unwrap_or(header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 64]);
        let path = Path::new("hostile.safetensors");
        if from_bytes(&bytes, path).is_ok() {
            let config = TrainConfig::load("mlp").unwrap();
            let err = format!("{:#}", network_from(&config, &bytes, path).err().unwrap());
            prop_assert!(err.contains("hostile.safetensors"), "{}", err);
        }
    }

    /// A PNG header of any size, with a correct checksum: refused or decoded, never a
    /// huge allocation; what decodes is prepared for the network.
    #[test]
    fn png_headers_of_any_size_never_panic(
        width in prop_oneof![1u32..64, Just(1u32), any::<u32>()],
        height in prop_oneof![1u32..64, Just(60_000_000u32), any::<u32>()],
        colour in prop::sample::select(vec![0u8, 2, 3, 4, 6]),
        depth in prop::sample::select(vec![1u8, 2, 4, 8, 16]),
    ) {
        let bytes = png_with_header(width, height, depth, colour);
        if let Ok(d) = decode_png_grey(&bytes, Path::new("tiny.png")) {
            let prepared = trainer::prepare::prepare(d.image, 28, 28, true);
            prop_assert_eq!(prepared.image.pixels.len(), 28 * 28);
        }
    }

    /// Any metrics.csv rows (infinite, NaN, huge, negative, fractional epochs):
    /// the rows a plot cannot show are skipped, the others drawn, and the
    /// plot finishes.
    #[test]
    fn metrics_with_any_values_plot_or_fail_cleanly(
        rows in prop::collection::vec(prop::collection::vec(prop_oneof![
            -1e3f64..1e3, Just(f64::NAN), Just(f64::INFINITY), Just(-f64::INFINITY), Just(1e300), Just(-1e300), Just(5e-324), 0f64..100.0, (1u32..200).prop_map(f64::from),
        ], 5), 1..12),
    ) {
        let mut text = String::from("epoch,train_loss,train_acc,test_loss,test_acc\n");
        for r in &rows {
            text.push_str(&r.iter().map(f64::to_string).collect::<Vec<_>>().join(","));
            text.push('\n');
        }
        let path = Path::new("run/metrics.csv");
        let parsed = parse_metrics(&text, path).unwrap();
        let drawn = plottable(&parsed, path);
        prop_assert!(drawn.iter().all(|r| r.epoch.is_finite() && r.test_loss.is_finite()));
        if !drawn.is_empty() {
            render((&drawn, "train"), "fuzz", Format::Svg, 300, 200).unwrap();
        }
    }
}

/// A PNG of one IHDR (with a correct CRC), a tiny IDAT and IEND.
fn png_with_header(width: u32, height: u32, depth: u8, colour: u8) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend(data);
        out.extend(&crc_input);
        out.extend(crc32(&crc_input).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([depth, colour, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    if colour == 3 {
        chunk(&mut out, b"PLTE", &[0, 0, 0, 255, 255, 255]);
    }
    // zlib of a few zero bytes.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_one_pixel_wide_png_of_sixty_million_rows_is_refused_before_decoding() {
    let bytes = png_with_header(1, 60_000_000, 8, 0);
    let err = format!(
        "{:#}",
        decode_png_grey(&bytes, Path::new("sliver.png")).unwrap_err()
    );
    assert!(
        err.contains("sliver.png") && err.contains("1x60000000"),
        "{err}"
    );
    // The largest accepted side still prepares within its bounds.
    let wide = GreyImage::filled(trainer_cli::image_io::MAX_SIDE, 1, 200);
    let p = trainer::prepare::prepare(wide, 28, 28, false);
    assert_eq!(p.image.pixels.len(), 28 * 28);
}

#[test]
fn safetensors_with_non_finite_weights_are_refused_naming_the_tensor() {
    let config = TrainConfig::load("mlp").unwrap();
    let mut tensors = config.build_network().unwrap().state_dict();
    let bias = tensors.get_mut("fc2.bias").unwrap();
    bias.as_slice_mut().unwrap()[0] = f32::INFINITY;
    let bytes = to_bytes(&tensors, &BTreeMap::new()).unwrap();
    let path = Path::new("w.safetensors");
    from_bytes(&bytes, path).unwrap();
    let err = format!("{:#}", network_from(&config, &bytes, path).err().unwrap());
    assert!(
        err.contains("w.safetensors") && err.contains("`fc2.bias`") && err.contains("inf"),
        "{err}"
    );
}
