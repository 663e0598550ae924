//! `cnn configs`: the built-in configs.

use anyhow::{Context, Result};
use trainer::config::{TrainConfig, BUILTIN};

/// `cnn configs`'s argument.
#[derive(clap::Args)]
pub(crate) struct ConfigsArgs {
    /// Print this config's TOML.
    name: Option<String>,
}

/// Lists the built-in configs with their descriptions, or prints one's TOML.
pub(crate) fn configs(args: ConfigsArgs) -> Result<()> {
    match args.name {
        None => {
            for (name, _) in BUILTIN {
                let c = TrainConfig::load(name)?;
                println!("{name:<10} {}", c.description);
            }
        }
        Some(name) => {
            let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name).with_context(|| {
                let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                format!(
                    "no built-in config `{name}`; the built-in ones are {}",
                    names.join(", ")
                )
            })?;
            print!("{text}");
        }
    }
    Ok(())
}
