//! `cargo xtask web`: builds the training page's WebAssembly module (crate
//! `trainer-web`) and puts it where `cnn serve` looks for it by default,
//! `target/web/trainer_web.wasm` in the project's folder. Needs only cargo
//! and rustup: the wasm32 target is added when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const TARGET: &str = "wasm32-unknown-unknown";

/// `cargo xtask web`'s flags.
#[derive(clap::Args)]
pub(crate) struct WebArgs {
    /// Build without WebAssembly SIMD128 (for browsers without it, or to compare speeds).
    #[arg(long)]
    no_simd: bool,
    /// Folder to put the module in.
    #[arg(long, default_value = "target/web")]
    out: PathBuf,
}

/// Adds the target if needed, builds in release mode, copies the module.
pub(crate) fn run(args: WebArgs, root: &Path) -> Result<()> {
    add_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "-p",
            "trainer-web",
            "--target",
            TARGET,
        ])
        .current_dir(root)
        // A small module: no debug information, symbols stripped.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    if !args.no_simd {
        // The module's loops use 128-bit vector instructions; every current browser has them.
        build.env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            "-C target-feature=+simd128",
        );
    }
    eprintln!("building the module (cargo build --release -p trainer-web --target {TARGET})");
    if !build.status().context("running cargo")?.success() {
        bail!("building the WebAssembly module failed");
    }
    let built = crate::target_dir(root)
        .join(TARGET)
        .join("release/trainer_web.wasm");
    let out = root.join(&args.out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let dest = out.join("trainer_web.wasm");
    std::fs::copy(&built, &dest)
        .with_context(|| format!("copying {} to {}", built.display(), dest.display()))?;
    let simd = if args.no_simd { "without" } else { "with" };
    println!("wrote {} ({simd} SIMD128)", dest.display());
    println!("then: cnn serve --model MODEL --data DIR, and open /train");
    Ok(())
}

/// `rustup target add wasm32-unknown-unknown` when the target is not installed.
fn add_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (cargo xtask web needs rustup to add the wasm32 target)")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("adding the target: rustup target add {TARGET}");
    if !Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()?
        .success()
    {
        bail!("rustup target add {TARGET} failed");
    }
    Ok(())
}
