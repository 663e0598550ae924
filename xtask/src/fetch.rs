//! `cargo xtask fetch-data`: put the four files of a data set in a folder, verified.
//!
//! Files come from the data set's mirrors (tried in order, with timeouts and
//! retries) or, with `--from DIR`, from a local folder. Each one is written to
//! a temporary name in the output folder (`.<name>.partial`), flushed to disk,
//! checked against the SHA-256 of its *decompressed* content, and only then
//! renamed to its final name: `<name>.gz` when the content is gzipped (as the
//! mirrors serve it), else `<name>`. A failed or interrupted transfer never
//! leaves anything under a final name; the temporary file is removed on
//! failure (and on the next run if the process was killed).
//!
//! [`fetch`] is the whole operation; [`run`] is the command line around it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mnist_io::{DatasetSpec, FileSpec, IdxError};

/// Arguments of `cargo xtask fetch-data`.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Which data set: mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,

    /// Copy the files from this local folder (gzipped or not) instead of downloading them.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,

    /// Where to put the files [default: data/DATASET/ under the workspace root].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Download from this base URL instead of the data set's public mirrors (repeatable;
    /// tried in order). Each must serve `<name>.gz` for the four files.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,

    /// Seconds to wait for a mirror to accept a connection (and for its name to resolve).
    #[arg(long, default_value_t = 5)]
    pub connect_timeout: u64,

    /// Attempts per mirror and file for transient errors (timeouts, resets, 5xx).
    #[arg(long, default_value_t = 2)]
    pub attempts: u32,
}

/// Where the files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local folder holding `<name>` or `<name>.gz` for every file.
    Local(PathBuf),
    /// Base URLs (each ending in `/`) serving `<name>.gz`, tried in order.
    Mirrors(Vec<String>),
}

/// Network settings for [`Source::Mirrors`].
#[derive(Debug, Clone)]
pub struct Network {
    /// Limit on resolving a mirror's name and on connecting to it.
    pub connect_timeout: Duration,
    /// Limit on any single read once connected (a stalled transfer fails after this).
    pub read_timeout: Duration,
    /// Attempts per mirror for transient errors; unreachable mirrors are not retried.
    pub attempts: u32,
    /// Once this long has passed without any mirror answering, stop trying: there is
    /// no network.
    pub give_up_after: Duration,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            attempts: 2,
            give_up_after: Duration::from_secs(15),
        }
    }
}

/// Everything [`fetch`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data set.
    pub spec: &'static DatasetSpec,
    /// Where the files come from.
    pub source: Source,
    /// The folder to fill (created if missing).
    pub out: PathBuf,
    /// Network settings, for [`Source::Mirrors`].
    pub network: Network,
    /// Draw progress bars (only ever drawn on a terminal).
    pub progress: bool,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid copy was already in place; nothing was written.
    AlreadyPresent(PathBuf),
    /// The file was fetched, verified and moved into place at this path.
    Installed(PathBuf),
}

/// The command line: resolves defaults, runs [`fetch`], prints what happened.
pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    let spec = mnist_io::spec_by_name(&args.dataset).with_context(|| {
        let known: Vec<&str> = mnist_io::KNOWN_DATASETS.iter().map(|s| s.name).collect();
        format!(
            "unknown data set {:?}; known: {}",
            args.dataset,
            known.join(", ")
        )
    })?;
    let out = args
        .out
        .unwrap_or_else(|| crate::workspace_root().join("data").join(spec.name));
    let source = match args.from {
        Some(dir) => Source::Local(dir),
        None if args.mirrors.is_empty() => {
            Source::Mirrors(spec.mirrors.iter().map(|m| m.to_string()).collect())
        }
        None => Source::Mirrors(args.mirrors),
    };
    let network = Network {
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        attempts: args.attempts.max(1),
        give_up_after: Duration::from_secs(3 * args.connect_timeout.max(1)),
        ..Network::default()
    };
    let outcomes = fetch(&Options {
        spec,
        source,
        out: out.clone(),
        network,
        progress: true,
    })?;
    if outcomes
        .iter()
        .all(|o| matches!(o, Outcome::AlreadyPresent(_)))
    {
        println!(
            "nothing to do: all {} files of {} are already in {} and verified",
            outcomes.len(),
            spec.name,
            out.display()
        );
    } else {
        let n = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Installed(_)))
            .count();
        println!(
            "{}: {n} file(s) fetched and verified into {}",
            spec.name,
            out.display()
        );
    }
    Ok(())
}

/// How to get the data without network, for error messages: only paths of
/// the user's own machine (a folder they hold, or a system package's).
fn from_hint(spec: &DatasetSpec) -> String {
    let example = match spec.name {
        "fashion-mnist" => {
            "/usr/share/datasets/fashion-mnist   (apt-get install dataset-fashion-mnist)"
        }
        _ => "DIR",
    };
    let files: Vec<String> = spec
        .files
        .iter()
        .map(|f| format!("{}.gz", f.name))
        .collect();
    format!(
        "Without network access, copy the files from a local folder with --from:\n    \
         cargo xtask fetch-data --dataset {} --from {example}\n\
         where the folder holds {}, gzipped or not.",
        spec.name,
        files.join(", ")
    )
}

/// Puts the four files of `opts.spec` into `opts.out`, verified; see the [module docs](self).
///
/// Files already present and valid are left alone. On error, the files that
/// were fetched before it stay in place (they are verified); the one that
/// failed is not under its final name, and no temporary file is left.
pub fn fetch(opts: &Options) -> anyhow::Result<Vec<Outcome>> {
    fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    let mut network_seen = false;
    for file in &opts.spec.files {
        // Leftover of an interrupted earlier run.
        let _ = fs::remove_file(partial_path(&opts.out, file));

        let invalid = match present(&opts.out, file) {
            Present::Valid(path) => {
                println!("{}: already present and verified", path.display());
                outcomes.push(Outcome::AlreadyPresent(path));
                continue;
            }
            Present::Invalid(paths) => paths,
        };
        let result = match &opts.source {
            Source::Local(dir) => copy_local(dir, file, &opts.out),
            Source::Mirrors(mirrors) => download(mirrors, file, opts, started, &mut network_seen),
        };
        match result {
            Ok(path) => {
                // An invalid copy under the other name would shadow the new one.
                for old in invalid.iter().filter(|p| **p != path) {
                    fs::remove_file(old)
                        .with_context(|| format!("cannot remove invalid {}", old.display()))?;
                }
                println!("{}: verified and installed", path.display());
                outcomes.push(Outcome::Installed(path));
            }
            Err(e) => {
                let stop = matches!(opts.source, Source::Mirrors(_));
                failures.push(e);
                if stop {
                    // Network trouble would only repeat for the next files.
                    break;
                }
            }
        }
    }
    match failures.len() {
        0 => Ok(outcomes),
        1 => Err(failures.remove(0)),
        n => {
            let all: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
            bail!("{n} files failed:\n  {}", all.join("\n  "))
        }
    }
}

/// What the output folder already holds for one file.
enum Present {
    /// A copy (plain or gzipped) whose decompressed content has the right SHA-256.
    Valid(PathBuf),
    /// No valid copy; these are copies that exist but fail the check.
    Invalid(Vec<PathBuf>),
}

/// Checks the copy the readers would use: the plain name when both exist,
/// as `mnist_io::find_file` chooses.
fn present(out: &Path, file: &FileSpec) -> Present {
    let [gz, plain] = final_paths(out, file);
    let Some(path) = [plain, gz].into_iter().find(|p| p.exists()) else {
        return Present::Invalid(Vec::new());
    };
    match mnist_io::verify_file(&path, file) {
        Ok(()) => Present::Valid(path),
        Err(e) => {
            println!("{e}; fetching it again");
            Present::Invalid(vec![path])
        }
    }
}

/// The two final names a file may have in the output folder: gzipped first.
fn final_paths(out: &Path, file: &FileSpec) -> [PathBuf; 2] {
    [out.join(format!("{}.gz", file.name)), out.join(file.name)]
}

fn partial_path(out: &Path, file: &FileSpec) -> PathBuf {
    out.join(format!(".{}.partial", file.name))
}

/// A temporary file in the output folder, removed when dropped unless installed.
struct Partial {
    path: PathBuf,
    installed: bool,
}

impl Partial {
    fn create(out: &Path, file: &FileSpec) -> anyhow::Result<(Partial, File)> {
        let path = partial_path(out, file);
        let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok((
            Partial {
                path,
                installed: false,
            },
            f,
        ))
    }

    /// Checks the content against `file` (the error names `origin`, where it came
    /// from), then renames it to its final name. The file must already be synced.
    fn verify_and_install(
        mut self,
        origin: &str,
        file: &FileSpec,
        out: &Path,
    ) -> anyhow::Result<PathBuf> {
        let content = mnist_io::read_maybe_gz(&self.path).map_err(|e| match e {
            // Name the origin rather than our temporary file.
            IdxError::Gzip { detail, .. } => {
                anyhow::anyhow!("{origin}: corrupt or truncated gzip stream: {detail}")
            }
            other => anyhow::Error::new(other),
        })?;
        mnist_io::verify_bytes(Path::new(origin), &content, file)
            .map_err(anyhow::Error::new)
            .with_context(|| format!("refusing {}: checksum mismatch", file.name))?;
        let gzipped = {
            let mut magic = [0u8; 2];
            File::open(&self.path)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok()
                && mnist_io::is_gzip(&magic)
        };
        let [gz, plain] = final_paths(out, file);
        let target = if gzipped { gz } else { plain };
        fs::rename(&self.path, &target).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.path.display(),
                target.display()
            )
        })?;
        self.installed = true;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(out) {
            let _ = dir.sync_all();
        }
        Ok(target)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes everything from `reader` into `file` (at most [`mnist_io::MAX_FILE_BYTES`]) and syncs it.
fn write_synced(
    reader: &mut dyn Read,
    file: File,
    progress: &indicatif::ProgressBar,
) -> io::Result<u64> {
    let mut w = BufWriter::new(file);
    let limit = mnist_io::MAX_FILE_BYTES;
    let n = io::copy(
        &mut reader.take(limit + 1),
        &mut progress.wrap_write(&mut w),
    )?;
    if n > limit {
        return Err(io::Error::other(format!(
            "more than {limit} bytes; refusing it"
        )));
    }
    w.flush()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(n)
}

fn copy_local(dir: &Path, file: &FileSpec, out: &Path) -> anyhow::Result<PathBuf> {
    let src = mnist_io::find_file(dir, file.name).map_err(anyhow::Error::new)?;
    let mut reader = File::open(&src).with_context(|| format!("cannot open {}", src.display()))?;
    let (partial, tmp) = Partial::create(out, file)?;
    write_synced(&mut reader, tmp, &indicatif::ProgressBar::hidden()).with_context(|| {
        format!(
            "cannot copy {} to {}",
            src.display(),
            partial.path.display()
        )
    })?;
    partial.verify_and_install(&src.display().to_string(), file, out)
}

fn agent(net: &Network) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_resolve(Some(net.connect_timeout))
        .timeout_connect(Some(net.connect_timeout))
        .timeout_recv_response(Some(net.read_timeout))
        .timeout_per_read(Some(net.read_timeout))
        .user_agent(concat!(
            "cnn-from-scratch-xtask/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .new_agent()
}

/// Why one download attempt failed.
enum Failure {
    /// No HTTP response at all: name not resolved, connection refused or timed out.
    /// Not retried on the same mirror, so that no network fails fast.
    NoResponse(String),
    /// The mirror answered but the transfer failed; retried when `transient`.
    Transfer { msg: String, transient: bool },
    /// The file arrived but is wrong (checksum, gzip): try the next mirror.
    Refused(anyhow::Error),
}

fn download(
    mirrors: &[String],
    file: &FileSpec,
    opts: &Options,
    started: Instant,
    network_seen: &mut bool,
) -> anyhow::Result<PathBuf> {
    let net = &opts.network;
    let agent = agent(net);
    let remote = format!("{}.gz", file.name);
    let mut tried = Vec::new();
    'mirrors: for mirror in mirrors {
        let url = if mirror.ends_with('/') {
            format!("{mirror}{remote}")
        } else {
            format!("{mirror}/{remote}")
        };
        for attempt in 1..=net.attempts {
            if !*network_seen && started.elapsed() > net.give_up_after {
                tried.push(format!(
                    "{url}: not tried, no mirror answered within {} s",
                    net.give_up_after.as_secs()
                ));
                continue 'mirrors;
            }
            if attempt > 1 {
                std::thread::sleep(Duration::from_secs(u64::from(attempt - 1)));
            }
            eprintln!("downloading {url}");
            let msg = match get(&agent, &url, file, opts) {
                Ok(path) => return Ok(path),
                Err(Failure::NoResponse(msg)) => {
                    eprintln!("  no answer: {msg}");
                    tried.push(format!("{url}: no answer: {msg}"));
                    continue 'mirrors;
                }
                Err(Failure::Refused(e)) => {
                    *network_seen = true;
                    eprintln!("  refused: {e:#}");
                    tried.push(format!("{url}: {e:#}"));
                    continue 'mirrors;
                }
                Err(Failure::Transfer { msg, transient }) => {
                    *network_seen = true;
                    if !transient {
                        eprintln!("  failed: {msg}");
                        tried.push(format!("{url}: {msg}"));
                        continue 'mirrors;
                    }
                    eprintln!("  failed (attempt {attempt} of {}): {msg}", net.attempts);
                    msg
                }
            };
            if attempt == net.attempts {
                tried.push(format!("{url}: {msg} ({attempt} attempts)"));
            }
        }
    }
    let mut msg = format!(
        "could not fetch {remote} from any mirror:\n  {}",
        tried.join("\n  ")
    );
    if !*network_seen {
        msg.push_str("\n\n");
        msg.push_str(&from_hint(opts.spec));
    }
    bail!(msg)
}

/// One download attempt: GET, stream into the temporary file, verify, install.
fn get(
    agent: &ureq::Agent,
    url: &str,
    file: &FileSpec,
    opts: &Options,
) -> Result<PathBuf, Failure> {
    let response = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(code)) => {
            return Err(Failure::Transfer {
                msg: format!("HTTP status {code}"),
                transient: code >= 500 || code == 429,
            })
        }
        Err(e) => return Err(Failure::NoResponse(e.to_string())),
    };
    let len = response.body().content_length();
    let progress = if opts.progress {
        let bar = match len {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("{}.gz", file.name));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (partial, tmp) = Partial::create(&opts.out, file).map_err(Failure::Refused)?;
    let mut reader = response.into_body().into_reader();
    let written = write_synced(&mut reader, tmp, &progress);
    progress.finish_and_clear();
    let transfer = |msg: String| Failure::Transfer {
        msg,
        transient: true,
    };
    let n = written.map_err(|e| transfer(format!("transfer interrupted: {e}")))?;
    if let Some(len) = len {
        if n != len {
            return Err(transfer(format!("got {n} of {len} bytes")));
        }
    }
    partial
        .verify_and_install(url, file, &opts.out)
        .map_err(Failure::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real MNIST, found as every test of the workspace finds it.
    fn mnist_dir() -> Result<PathBuf, String> {
        crate::find_data::mnist(&crate::workspace_root())
    }

    fn options(source: Source, out: &Path) -> Options {
        Options {
            spec: &mnist_io::MNIST,
            source,
            out: out.to_path_buf(),
            network: Network::default(),
            progress: false,
        }
    }

    #[test]
    #[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
    fn fetch_from_local_folder_then_nothing_to_do() {
        let mnist = match mnist_dir() {
            Ok(d) => d,
            Err(why) => {
                println!("skipping: {why}");
                return;
            }
        };
        let out = tempfile::tempdir().unwrap();
        let opts = options(Source::Local(mnist), out.path());
        let first = fetch(&opts).unwrap();
        assert!(first.iter().all(|o| matches!(o, Outcome::Installed(_))));
        let second = fetch(&opts).unwrap();
        assert!(second
            .iter()
            .all(|o| matches!(o, Outcome::AlreadyPresent(_))));
        assert_eq!(second.len(), 4);
    }

    #[test]
    fn missing_local_file_names_it() {
        let empty = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = fetch(&options(Source::Local(empty.path().into()), out.path())).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("4 files failed"), "{msg}");
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }

    #[test]
    fn unreachable_mirrors_suggest_from() {
        let out = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let err = fetch(&options(
            Source::Mirrors(vec![
                "http://127.0.0.1:9/".into(),
                "http://127.0.0.1:9".into(),
            ]),
            out.path(),
        ))
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("--from DIR"), "{msg}");
        assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
        // The user sees the mirrors tried and their own paths, never the build machine's.
        assert!(msg.contains("http://127.0.0.1:9/"), "{msg}");
        assert!(!msg.contains("shared"), "{msg}");
        assert!(start.elapsed() < Duration::from_secs(20));
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }
}
