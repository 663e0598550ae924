//! `cargo xtask` as a new user first runs it: the alias in `.cargo/config.toml`.

/// The first `cargo xtask ...` of a fresh clone builds the tool (over a
/// hundred crates); run with `--quiet`, cargo shows nothing for minutes.
#[test]
fn the_alias_lets_cargo_show_its_build_progress() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cargo/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let alias = text
        .lines()
        .find(|l| l.trim_start().starts_with("xtask"))
        .unwrap_or_else(|| panic!("no xtask alias in {}", config.display()));
    assert!(alias.contains("run --package xtask"), "{alias}");
    let words: Vec<&str> = alias
        .split(|c: char| c.is_whitespace() || c == '"')
        .collect();
    assert!(
        !words.contains(&"--quiet") && !words.contains(&"-q"),
        "the alias hides cargo's progress: {alias}"
    );
}

/// Its help names the command a user types.
#[test]
fn help_says_cargo_xtask() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: cargo xtask"), "{help}");
}
