//! `cargo xtask sharing`: how a training epoch scales over threads, and how
//! it shares the machine with other busy processes (issue 5's last two
//! targets: 2 threads at least 1.8x faster than 1; beside two CPU-bound
//! processes, at most 2.2x the quiet epoch).
//!
//! It runs rounds of three one-epoch trainings (`cnn train --epochs 1`): one
//! thread, all threads, and all threads beside `--busy` processes that spin
//! (this program itself, `xtask busy-loop`), started just before that run and
//! killed after it. A small VM's speed wanders by up to half within minutes,
//! so each ratio is taken within a round, and the summary gives the median
//! of those ratios, not the ratio of medians.
//!
//! To compare two builds, `--baseline PATH` names another `cnn` binary
//! (built from an older commit, say): each round then also runs it quiet
//! and loaded, the two builds' loaded runs beside the same busy processes
//! in alternating order, and the summary gives the ratios of the two
//! builds' epochs within rounds. On this VM that is the only comparison
//! that resolves a change of 10-20%: stretches differ by more.
//!
//! `--floor` also runs, in every round, as many one-thread trainings as
//! the loaded run has threads, side by side as separate processes, quiet
//! and then beside the same busy processes: the same work with no
//! synchronisation at all between the threads. Their ratios are the floor
//! this machine sets for any trainer of this network: what time slicing and
//! the neighbours cost a workload of this size even with nothing to wait
//! for (caches, memory bandwidth, the hypervisor). On this project's VM it
//! was itself above 2.2x beside two busy processes.
//!
//! On Linux each run also records the VM's steal time (`/proc/stat`): the
//! share of CPU time the hypervisor gave to other machines. Steal slows a
//! run without anything on this machine to show for it (it reached 20-40%
//! in some stretches), so rounds with more than `--max-steal` percent in any
//! run are left out of the medians, and counted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

/// Arguments of `cargo xtask sharing`.
#[derive(clap::Args)]
pub struct SharingArgs {
    /// Rounds of three runs each.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Threads of the quiet and the loaded runs [default: every CPU].
    #[arg(long)]
    threads: Option<usize>,
    /// Busy processes beside the loaded run.
    #[arg(long, default_value_t = 2)]
    busy: usize,
    /// Network config (a built-in name or a TOML file).
    #[arg(long, default_value = "seed")]
    config: String,
    /// MNIST folder.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Train on the first N images only (quicker rounds, noisier ratios).
    #[arg(long, value_name = "N")]
    train_subset: Option<usize>,
    /// Leave out rounds with a run above this steal percentage.
    #[arg(long, default_value_t = 2.0)]
    max_steal: f64,
    /// Another `cnn` binary to interleave with this build's, quiet and
    /// loaded, in every round.
    #[arg(long, value_name = "CNN")]
    baseline: Option<PathBuf>,
    /// Also run one-thread trainings side by side, one per thread, quiet
    /// and loaded: the floor that the machine sets (see the module's
    /// comment).
    #[arg(long)]
    floor: bool,
}

/// One round: 1 thread, all threads, loaded; the baseline's all-thread
/// and loaded runs, if any; and the side-by-side one-thread runs, quiet and
/// loaded, if any (their seconds the mean over the processes).
struct Round {
    runs: [Run; 3],
    baseline: Option<[Run; 2]>,
    floor: Option<[Run; 2]>,
}

impl Round {
    fn steal_at_most(&self, max: f64) -> bool {
        self.runs
            .iter()
            .chain(self.baseline.iter().flatten())
            .chain(self.floor.iter().flatten())
            .all(|r| r.steal.unwrap_or(0.0) <= max)
    }
}

/// One timed run: training seconds, and the VM's steal percentage over it
/// (None where `/proc/stat` cannot be read).
#[derive(Clone, Copy, Debug)]
struct Run {
    seconds: f64,
    steal: Option<f64>,
}

/// Runs the task.
pub fn run(args: SharingArgs) -> Result<()> {
    let root = crate::workspace_root();
    let cnn = crate::build_cnn(&root)?;
    let data = args.data.clone().unwrap_or_else(|| root.join("data/mnist"));
    if let Some(b) = &args.baseline {
        if !b.is_file() {
            bail!("--baseline {}: no such file", b.display());
        }
    }
    if !crate::has_mnist(&data) {
        bail!(
            "no MNIST in {} (cargo xtask fetch-data, or --data DIR)",
            data.display()
        );
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let out = cnn.with_file_name("sharing-run");

    println!(
        "{} rounds of: 1 thread, {threads} threads, {threads} threads beside {} busy processes (`cnn train --epochs 1`, training seconds)",
        args.rounds, args.busy
    );
    if let Some(b) = &args.baseline {
        println!(
            "and, interleaved, {threads} threads quiet and loaded of the baseline {}",
            b.display()
        );
    }
    let mut rounds = Vec::new();
    for r in 1..=args.rounds {
        let epoch = |t: usize| train_epoch(&cnn, &args, &data, &out, t);
        let base = |t: usize| {
            let b = args.baseline.as_ref().expect("a baseline");
            train_epoch(b, &args, &data, &out, t)
        };
        let one = epoch(1)?;
        let all = epoch(threads)?;
        let base_all = args.baseline.is_some().then(|| base(threads)).transpose()?;
        let (loaded, base_loaded) = {
            let _busy = Busy::start(args.busy)?;
            // Alternate which build goes first beside the same processes.
            if r % 2 == 0 && args.baseline.is_some() {
                let b = base(threads)?;
                (epoch(threads)?, Some(b))
            } else {
                let l = epoch(threads)?;
                (
                    l,
                    args.baseline.is_some().then(|| base(threads)).transpose()?,
                )
            }
        };
        let baseline = base_all.zip(base_loaded).map(|(a, l)| [a, l]);
        let floor = if args.floor {
            let side_by_side = || side_by_side_epochs(&cnn, &args, &data, &out, threads);
            let quiet = side_by_side()?;
            let _busy = Busy::start(args.busy)?;
            Some([quiet, side_by_side()?])
        } else {
            None
        };
        println!(
            "round {r:>2}: 1 thread {:.2} s, {threads} threads {:.2} s ({:.2}x), loaded {:.2} s ({:.2}x the quiet run); steal {}",
            one.seconds,
            all.seconds,
            one.seconds / all.seconds,
            loaded.seconds,
            loaded.seconds / all.seconds,
            [one, all, loaded]
                .iter()
                .map(|r| r.steal.map_or("?".into(), |s| format!("{s:.0}%")))
                .collect::<Vec<_>>()
                .join("/"),
        );
        if let Some([a, l]) = baseline {
            println!(
                "round {r:>2}, baseline: {threads} threads {:.2} s, loaded {:.2} s ({:.2}x); this build's loaded run {:.2}x the baseline's",
                a.seconds,
                l.seconds,
                l.seconds / a.seconds,
                loaded.seconds / l.seconds
            );
        }
        if let Some([q, l]) = floor {
            println!(
                "round {r:>2}, {threads} one-thread runs side by side: {:.2} s, loaded {:.2} s ({:.2}x)",
                q.seconds,
                l.seconds,
                l.seconds / q.seconds
            );
        }
        rounds.push(Round {
            runs: [one, all, loaded],
            baseline,
            floor,
        });
    }
    let _ = std::fs::remove_dir_all(&out);
    for k in 0..threads {
        let _ = std::fs::remove_dir_all(side_by_side_out(&out, k));
    }

    let kept: Vec<&Round> = rounds
        .iter()
        .filter(|r| r.steal_at_most(args.max_steal))
        .collect();
    println!(
        "\n{} of {} rounds had at most {}% steal in every run; medians over those:",
        kept.len(),
        rounds.len(),
        args.max_steal
    );
    if kept.is_empty() {
        bail!("no round to summarise; try again later, or raise --max-steal");
    }
    let median_of =
        |f: &dyn Fn(&[Run; 3]) -> f64| median(kept.iter().map(|r| f(&r.runs)).collect());
    println!(
        "  epoch: 1 thread {:.2} s, {threads} threads {:.2} s, loaded {:.2} s",
        median_of(&|r| r[0].seconds),
        median_of(&|r| r[1].seconds),
        median_of(&|r| r[2].seconds)
    );
    println!(
        "  {threads} threads vs 1: {:.2}x (target: at least 1.8x)",
        median_of(&|r| r[0].seconds / r[1].seconds)
    );
    println!(
        "  beside {} busy processes: {:.2}x the quiet epoch (target: at most 2.2x; a fair share is {:.1}x)",
        args.busy,
        median_of(&|r| r[2].seconds / r[1].seconds),
        (threads + args.busy) as f64 / threads as f64
    );
    let paired = with_extra(&kept, |r| r.baseline);
    if !paired.is_empty() {
        let median_of = |f: &PairRatio<'_>| median_over(&paired, f);
        println!(
            "  the baseline: {threads} threads {:.2} s, loaded {:.2} s, {:.2}x its quiet epoch",
            median_of(&|_, b| b[0].seconds),
            median_of(&|_, b| b[1].seconds),
            median_of(&|_, b| b[1].seconds / b[0].seconds)
        );
        println!(
            "  this build over the baseline, within rounds: quiet {:.2}x, loaded {:.2}x",
            median_of(&|r, b| r[1].seconds / b[0].seconds),
            median_of(&|r, b| r[2].seconds / b[1].seconds)
        );
    }
    let floors = with_extra(&kept, |r| r.floor);
    if !floors.is_empty() {
        let median_of = |f: &PairRatio<'_>| median_over(&floors, f);
        println!(
            "  {threads} one-thread runs side by side (no synchronisation; the machine's floor): {:.2} s, loaded {:.2} s",
            median_of(&|_, s| s[0].seconds),
            median_of(&|_, s| s[1].seconds),
        );
        println!(
            "    their throughput over one alone: {:.2}x (this build's {threads} threads vs 1, above)",
            median_of(&|r, s| threads as f64 * r[0].seconds / s[0].seconds)
        );
        println!(
            "    beside {} busy processes: {:.2}x their quiet runs (this build's, above)",
            args.busy,
            median_of(&|_, s| s[1].seconds / s[0].seconds)
        );
    }
    Ok(())
}

/// One epoch of `cnn train` on `threads` threads, timed by its own
/// metrics.csv.
fn train_epoch(
    cnn: &Path,
    args: &SharingArgs,
    data: &Path,
    out: &Path,
    threads: usize,
) -> Result<Run> {
    let before = read_cpu_times();
    let child = start_epoch(cnn, args, data, out, threads)?;
    let seconds = finish_epoch(child, out)?;
    Ok(Run {
        seconds,
        steal: steal_between(before, read_cpu_times()),
    })
}

/// `count` one-thread epochs at once, as separate processes: their mean
/// training seconds.
fn side_by_side_epochs(
    cnn: &Path,
    args: &SharingArgs,
    data: &Path,
    out: &Path,
    count: usize,
) -> Result<Run> {
    let before = read_cpu_times();
    let children = (0..count)
        .map(|k| {
            let out = side_by_side_out(out, k);
            start_epoch(cnn, args, data, &out, 1).map(|c| (c, out))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut total = 0.0;
    for (child, out) in children {
        total += finish_epoch(child, &out)?;
    }
    Ok(Run {
        seconds: total / count as f64,
        steal: steal_between(before, read_cpu_times()),
    })
}

/// The run folder of side-by-side process `k`.
fn side_by_side_out(out: &Path, k: usize) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(format!("-{k}"));
    PathBuf::from(name)
}

/// Starts one epoch of `cnn train` into a fresh `out`.
fn start_epoch(
    cnn: &Path,
    args: &SharingArgs,
    data: &Path,
    out: &Path,
    threads: usize,
) -> Result<Child> {
    let _ = std::fs::remove_dir_all(out);
    let mut cmd = Command::new(cnn);
    cmd.args(["--threads", &threads.to_string(), "train"])
        .args(["--config", &args.config, "--epochs", "1"])
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null());
    if let Some(n) = args.train_subset {
        cmd.args(["--train-subset", &n.to_string()]);
    }
    cmd.stderr(Stdio::piped())
        .spawn()
        .context("starting cnn train")
}

/// Waits for an epoch started by [`start_epoch`]: its training seconds,
/// from its own metrics.csv.
fn finish_epoch(child: Child, out: &Path) -> Result<f64> {
    let result = child.wait_with_output().context("running cnn train")?;
    if !result.status.success() {
        bail!(
            "cnn train failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let metrics = out.join("metrics.csv");
    let csv = std::fs::read_to_string(&metrics)
        .with_context(|| format!("reading {}", metrics.display()))?;
    train_seconds(&csv)
        .with_context(|| format!("{}: no train_seconds in its last row", metrics.display()))
}

/// Steal percentage between two readings of `/proc/stat`, if both worked.
fn steal_between(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    steal_percent(before?, after?)
}

/// The `train_seconds` column of a metrics.csv's last row.
fn train_seconds(csv: &str) -> Option<f64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let column = header.iter().position(|h| *h == "train_seconds")?;
    lines.last()?.split(',').nth(column)?.parse().ok()
}

/// The machine's (steal, total) CPU time in ticks, from `/proc/stat`.
fn read_cpu_times() -> Option<(u64, u64)> {
    cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// (steal, total) from the text of `/proc/stat`: its `cpu` line's fields are
/// user nice system idle iowait irq softirq steal [guest guest_nice], and
/// guest time is already counted in user and nice.
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    (fields.len() == 8).then(|| (fields[7], fields.iter().sum()))
}

/// Steal as a percentage of all CPU time between two readings.
fn steal_percent((steal0, total0): (u64, u64), (steal1, total1): (u64, u64)) -> Option<f64> {
    let total = total1.checked_sub(total0)?;
    (total > 0).then(|| 100.0 * steal1.saturating_sub(steal0) as f64 / total as f64)
}

/// A figure of a round's own runs and its extra pair (the baseline's, or
/// the side-by-side runs).
type PairRatio<'a> = dyn Fn(&[Run; 3], &[Run; 2]) -> f64 + 'a;

/// The rounds' own runs beside their extra pair, for the rounds that have one.
fn with_extra(
    rounds: &[&Round],
    extra: impl Fn(&Round) -> Option<[Run; 2]>,
) -> Vec<([Run; 3], [Run; 2])> {
    rounds
        .iter()
        .filter_map(|r| extra(r).map(|e| (r.runs, e)))
        .collect()
}

/// The median of `f` over rounds and their extra pairs.
fn median_over(pairs: &[([Run; 3], [Run; 2])], f: &PairRatio<'_>) -> f64 {
    median(pairs.iter().map(|(r, e)| f(r, e)).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Busy processes, killed when dropped (also on an error in between).
struct Busy(Vec<Child>);

impl Busy {
    fn start(count: usize) -> Result<Busy> {
        let exe = std::env::current_exe().context("finding this program, to start busy loops")?;
        let mut busy = Busy(Vec::new());
        for _ in 0..count {
            busy.0.push(
                Command::new(&exe)
                    .arg("busy-loop")
                    .stdout(Stdio::null())
                    .spawn()
                    .context("starting a busy loop")?,
            );
        }
        Ok(busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `xtask busy-loop`: spins until killed, as a CPU-bound neighbour.
pub fn busy_loop() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_train_seconds_from_the_last_row_by_its_header() {
        let csv = "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds\n\
                   1,0.7,77.3,0.15,95.1,2.441,0.13\n\
                   2,0.1,97.0,0.09,97.2,2.502,0.12\n";
        assert_eq!(train_seconds(csv), Some(2.502));
        assert_eq!(train_seconds("epoch,train_loss\n1,0.7\n"), None);
        assert_eq!(train_seconds(""), None);
    }

    #[test]
    fn reads_steal_and_total_from_proc_stat() {
        let stat = "cpu  100 5 50 800 10 1 2 30 7 0\ncpu0 50 2 25 400 5 0 1 15 0 0\nintr 1 2\n";
        assert_eq!(
            cpu_times(stat),
            Some((30, 100 + 5 + 50 + 800 + 10 + 1 + 2 + 30))
        );
        assert_eq!(cpu_times("cpu  1 2 3\n"), None, "too few fields");
        assert_eq!(cpu_times("intr 1\n"), None);
        assert_eq!(steal_percent((30, 1000), (80, 1200)), Some(25.0));
        assert_eq!(
            steal_percent((30, 1000), (30, 1000)),
            None,
            "no time passed"
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    /// A round is left out for steal in any of its runs, the baseline's
    /// included; an unknown steal counts as none.
    #[test]
    fn a_rounds_steal_counts_the_baselines_runs() {
        let run = |steal| Run {
            seconds: 1.0,
            steal,
        };
        let quiet = [run(Some(0.0)), run(None), run(Some(1.0))];
        let round = |baseline| Round {
            runs: quiet,
            baseline,
            floor: None,
        };
        assert!(round(None).steal_at_most(2.0));
        assert!(round(Some([run(Some(2.0)), run(None)])).steal_at_most(2.0));
        assert!(!round(Some([run(Some(0.0)), run(Some(5.0))])).steal_at_most(2.0));
        assert!(!round(None).steal_at_most(0.5));
        let with_floor = Round {
            floor: Some([run(Some(0.0)), run(Some(3.0))]),
            ..round(None)
        };
        assert!(!with_floor.steal_at_most(2.0), "the floor's runs count too");
    }

    /// Figures over a round's own runs and its extra pair come from the
    /// rounds that have one, each ratio taken within its round.
    #[test]
    fn medians_over_the_rounds_with_an_extra_pair() {
        let run = |seconds| Run {
            seconds,
            steal: None,
        };
        let round = |quiet, floor: Option<[f64; 2]>| Round {
            runs: [run(4.0), run(quiet), run(2.0 * quiet)],
            baseline: None,
            floor: floor.map(|[q, l]| [run(q), run(l)]),
        };
        let rounds = [
            round(2.0, Some([4.0, 8.0])),
            round(2.0, None),
            round(3.0, Some([6.0, 15.0])),
        ];
        let kept: Vec<&Round> = rounds.iter().collect();
        let floors = with_extra(&kept, |r| r.floor);
        assert_eq!(floors.len(), 2, "the round without a floor is left out");
        assert_eq!(
            median_over(&floors, &|_, f| f[1].seconds / f[0].seconds),
            2.25
        );
        assert_eq!(
            median_over(&floors, &|r, f| f[0].seconds / r[1].seconds),
            2.0
        );
        assert!(with_extra(&kept, |r| r.baseline).is_empty());
    }

    #[test]
    fn side_by_side_runs_get_their_own_folders() {
        let out = Path::new("/tmp/sharing-run");
        assert_eq!(side_by_side_out(out, 0), Path::new("/tmp/sharing-run-0"));
        assert_eq!(side_by_side_out(out, 1), Path::new("/tmp/sharing-run-1"));
    }
}
