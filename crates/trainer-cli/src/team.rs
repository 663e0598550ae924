//! A team of threads that stay awake between the phases of training steps.
//!
//! Why: each step ends in a join (when the replicas and the update are
//! done), and between steps the main thread does a little serial work (the
//! step had two joins when this was measured). In rayon's pool
//! a worker that finds no work yields, then sleeps. On a machine shared with
//! other busy processes, each yield and each sleep hands the CPU to one of
//! them, and the woken worker waits for its turn: beside two busy loops our
//! two workers got about a third of the machine, not half, and an epoch took
//! 3.5-4x its quiet time. A team member instead spins (`spin_loop`, no
//! system call) until the next phase, and sleeps only after [`SPIN`] with
//! nothing to do. It keeps its share of the CPU, and a quiet machine loses
//! nothing: the spinning core would be idle.
//!
//! Spinning alone was not enough: in some runs Linux put both our threads on
//! one CPU and the two busy loops on the other, and there one of our threads
//! spun while the other waited for the CPU (10-10.6 s epochs, 3.5x). So while
//! a team runs, each of its threads is pinned to a CPU of its own, when the
//! team has as many threads as the process has CPUs ([`set_pinning`] turns
//! this off; `cnn --no-pin`).
//!
//! What a team gives up: a thread that finishes its tasks early waits
//! instead of taking pieces of the rayon loops inside another thread's
//! task, as rayon's idle workers do. On a quiet machine that costs the last
//! task's tail, about 4% of a step (0.15 ms of 3.5); letting the waiting
//! thread take such pieces was tried, and doubled the epoch beside two busy
//! loops (the task's owner then waits, in rayon, for a thief that is
//! descheduled).
//!
//! [`Team::scope`] runs the leader's closure on the calling thread; each
//! other thread of the current rayon pool joins as a follower when it is
//! free, for as long as the closure runs. [`Team::for_each`] hands out tasks
//! `0..n` to whoever is free, the leader included, and returns when all are
//! done. Inside a task, rayon's parallel loops run on the task's own thread:
//! every other thread is busy in the team.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Whether [`Team::scope`] pins its threads (see [`set_pinning`]).
static PIN: AtomicBool = AtomicBool::new(true);

/// Lets [`Team::scope`] pin each of its threads to its own CPU while the
/// team runs, when the team has as many threads as the process has CPUs
/// (the default), or not.
pub fn set_pinning(on: bool) {
    PIN.store(on, Relaxed);
}

/// How long a thread spins, waiting, before it sleeps.
pub const SPIN: Duration = Duration::from_millis(2);

type Task<'a> = &'a (dyn Fn(usize) + Sync);
type Ready<'a> = &'a (dyn Fn(usize) -> bool + Sync);
type Idle<'a> = &'a (dyn Fn(usize) + Sync);

thread_local! {
    /// Whether this thread is in a team (as its leader or a follower).
    static IN_TEAM: Cell<bool> = const { Cell::new(false) };
}

/// Who is in a [`Team`]. Joining, opening a phase and closing it all take
/// its lock, so each phase knows exactly which followers take part.
#[derive(Default)]
struct Members {
    /// Followers that have joined.
    joined: usize,
    /// Whether a phase runs that a follower joining now enters at once.
    /// Why: a trainer's epoch is one phase, and a follower whose thread
    /// started late would otherwise sit out the whole epoch.
    open: bool,
    /// Followers in the current phase.
    in_phase: usize,
}

/// The threads of a [`Team::scope`].
pub struct Team {
    /// The pool's other threads: followers that may join.
    capacity: usize,
    /// Who has joined, and who is in the current phase.
    members: Mutex<Members>,
    /// The CPUs to pin the leader (first) and each joining follower to.
    pin: Option<Vec<usize>>,
    /// Bumped by the leader to publish a phase.
    generation: AtomicU64,
    /// The phase's task, its readiness test and what a waiting thread does,
    /// valid while the phase runs.
    task: Mutex<Option<(Task<'static>, Ready<'static>, Idle<'static>)>>,
    tasks: AtomicUsize,
    next: AtomicUsize,
    /// Followers that have left the current phase.
    left: AtomicUsize,
    stop: AtomicBool,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Team {
    /// Runs `leader` on this thread, with the other threads of the current
    /// rayon pool joining the team as they become free, and waiting in it
    /// until `leader` returns.
    ///
    /// A follower that has not joined yet is not waited for: tasks are
    /// claimed by whoever is in the team, so the results are the same with
    /// any number of followers, and a pool whose threads are all busy
    /// elsewhere (another team in the same pool, say) gives a team of one.
    /// A follower that joins while a phase runs takes part in it at once.
    pub fn scope<R: Send>(leader: impl FnOnce(&Team) -> R + Send) -> R {
        let capacity = rayon::current_num_threads().saturating_sub(1);
        // Pinned only when the team fills every CPU the process may use:
        // then two such processes also share each CPU evenly, whereas a
        // smaller team pinned to the first CPUs would leave others idle.
        let cpus = affinity::allowed();
        let pin = (PIN.load(Relaxed) && capacity > 0 && cpus.len() == capacity + 1).then_some(cpus);
        let team = Team {
            capacity,
            members: Mutex::new(Members::default()),
            pin,
            generation: AtomicU64::new(0),
            task: Mutex::new(None),
            tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            left: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        };
        let lead = || {
            let was = IN_TEAM.replace(true);
            let result = {
                let _pinned = team
                    .pin
                    .as_ref()
                    .map(|cpus| affinity::Pinned::to(cpus[0], cpus));
                catch_unwind(AssertUnwindSafe(|| leader(&team)))
            };
            IN_TEAM.set(was);
            team.stop.store(true, SeqCst);
            team.notify();
            result
        };
        let result = if capacity == 0 {
            lead()
        } else {
            rayon::scope(|s| {
                for _ in 0..capacity {
                    s.spawn(|_| team.follow());
                }
                lead()
            })
        };
        match result {
            Ok(r) => r,
            Err(p) => resume_unwind(p),
        }
    }

    /// Threads that may take part: the leader and the pool's other threads.
    pub fn threads(&self) -> usize {
        self.capacity + 1
    }

    /// Runs `task(i)` for every `i` in `0..n`, each once, on any of the
    /// team's threads, and returns when all have returned. Only the leader
    /// (the thread that called [`Team::scope`]) may call it.
    pub fn for_each(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        self.for_each_when(n, &|_| true, task);
    }

    /// [`Team::for_each`] for tasks that depend on earlier ones: tasks are
    /// claimed in order, and task `i` only once `ready(i)` is true. `ready(i)`
    /// must become true once tasks `0..i` have returned (it may be sooner).
    /// Why: a thread that waits for a task to become ready holds no claim,
    /// so if it is descheduled meanwhile, another thread takes the task
    /// (waiting inside a claimed task made the step slower on a shared
    /// machine). A data-parallel step's update blocks wait so for the
    /// micro-batches' backward passes.
    pub fn for_each_when(
        &self,
        n: usize,
        ready: &(dyn Fn(usize) -> bool + Sync),
        task: &(dyn Fn(usize) + Sync),
    ) {
        self.for_each_waiting(n, ready, task, &|_| {});
    }

    /// [`Team::for_each_when`], where a thread that waits for task `i` to
    /// become ready calls `idle(i)` between its checks. Why: a
    /// data-parallel epoch has work for a waiting thread that is not a
    /// task of its own: running again a micro-batch whose thread is
    /// descheduled (see [`crate::step`]).
    pub fn for_each_waiting(
        &self,
        n: usize,
        ready: &(dyn Fn(usize) -> bool + Sync),
        task: &(dyn Fn(usize) + Sync),
        idle: &(dyn Fn(usize) + Sync),
    ) {
        if n <= 1 || self.capacity == 0 {
            return in_order(n, ready, task, idle);
        }
        // SAFETY: the followers use the task and its test only between the
        // generation bump below (or their joining the open phase) and their
        // `left` count, and this function returns only after every follower
        // of the phase has left it; the borrows outlive that.
        let task: Task<'static> = unsafe { std::mem::transmute::<Task<'_>, Task<'static>>(task) };
        let ready: Ready<'static> =
            unsafe { std::mem::transmute::<Ready<'_>, Ready<'static>>(ready) };
        let idle: Idle<'static> = unsafe { std::mem::transmute::<Idle<'_>, Idle<'static>>(idle) };
        {
            let mut members = self.members.lock().expect("no panic holds this lock");
            *self.task.lock().expect("no panic holds this lock") = Some((task, ready, idle));
            self.tasks.store(n, SeqCst);
            self.next.store(0, SeqCst);
            self.left.store(0, SeqCst);
            members.open = true;
            members.in_phase = members.joined;
            self.generation.fetch_add(1, SeqCst);
        }
        self.notify();
        self.work(task, ready, idle, n);
        let followers = {
            let mut members = self.members.lock().expect("no panic holds this lock");
            members.open = false;
            members.in_phase
        };
        wait_until(
            || self.left.load(Acquire) == followers,
            &self.sleepers,
            &self.lock,
            &self.wake,
        );
        *self.task.lock().expect("no panic holds this lock") = None;
        if let Some(p) = self.panic.lock().expect("no panic holds this lock").take() {
            resume_unwind(p);
        }
    }

    /// Claims and runs tasks until none is left; waits, holding no claim,
    /// for the next one to be ready.
    fn work(&self, task: Task<'_>, ready: Ready<'_>, idle: Idle<'_>, n: usize) {
        loop {
            let i = self.next.load(Acquire);
            if i >= n {
                return;
            }
            if !ready(i) {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| idle(i))) {
                    self.panic
                        .lock()
                        .expect("no panic holds this lock")
                        .get_or_insert(p);
                }
                std::hint::spin_loop();
                continue;
            }
            if self
                .next
                .compare_exchange_weak(i, i + 1, AcqRel, Acquire)
                .is_err()
            {
                continue;
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| task(i))) {
                self.panic
                    .lock()
                    .expect("no panic holds this lock")
                    .get_or_insert(p);
            }
        }
    }

    /// A follower's life: join, then wait for a phase, work, leave it;
    /// until stopped. A thread already in a team (the leader, or a follower
    /// that picked this job up inside one of its tasks' rayon loops) does
    /// not join: it would wait for phases that its own suspended work must
    /// publish or finish.
    fn follow(&self) {
        if IN_TEAM.get() || self.stop.load(Acquire) {
            return;
        }
        IN_TEAM.set(true);
        let (index, mut seen) = {
            let mut members = self.members.lock().expect("no panic holds this lock");
            members.joined += 1;
            let generation = self.generation.load(SeqCst);
            if members.open {
                // Into the phase that runs: as if its bump were still to see.
                members.in_phase += 1;
                (members.joined, generation - 1)
            } else {
                (members.joined, generation)
            }
        };
        let _pinned = self
            .pin
            .as_ref()
            .and_then(|cpus| cpus.get(index).map(|&c| affinity::Pinned::to(c, cpus)));
        loop {
            wait_until(
                || self.generation.load(Acquire) != seen || self.stop.load(Acquire),
                &self.sleepers,
                &self.lock,
                &self.wake,
            );
            if self.stop.load(Acquire) {
                break;
            }
            seen = self.generation.load(Acquire);
            let (task, ready, idle) = self
                .task
                .lock()
                .expect("no panic holds this lock")
                .expect("published");
            self.work(task, ready, idle, self.tasks.load(Acquire));
            self.left.fetch_add(1, AcqRel);
            self.notify();
        }
        IN_TEAM.set(false);
    }

    /// Wakes any thread of the team that sleeps.
    fn notify(&self) {
        if self.sleepers.load(SeqCst) > 0 {
            let _guard = self.lock.lock().expect("no panic holds this lock");
            self.wake.notify_all();
        }
    }
}

/// Runs the tasks on this thread, in order, each once it is ready.
fn in_order(n: usize, ready: Ready<'_>, task: Task<'_>, idle: Idle<'_>) {
    for i in 0..n {
        while !ready(i) {
            idle(i);
            std::hint::spin_loop();
        }
        task(i);
    }
}

/// Spins until `ready`, then sleeps on `wake` until `ready`.
fn wait_until(ready: impl Fn() -> bool, sleepers: &AtomicUsize, lock: &Mutex<()>, wake: &Condvar) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !ready() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(256) && start.elapsed() > SPIN {
            let mut guard = lock.lock().expect("no panic holds this lock");
            sleepers.fetch_add(1, SeqCst);
            while !ready() {
                guard = wake.wait(guard).expect("no panic holds this lock");
            }
            sleepers.fetch_sub(1, SeqCst);
            return;
        }
    }
}

/// Pinning threads to CPUs, on Linux.
mod affinity {
    /// The CPUs this thread may run on, in increasing order (none where
    /// that cannot be read).
    pub fn allowed() -> Vec<usize> {
        #[cfg(target_os = "linux")]
        // SAFETY: cpu_set_t is plain data, written by sched_getaffinity.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
        #[cfg(not(target_os = "linux"))]
        Vec::new()
    }

    /// Lets this thread run on `cpus` only (best effort).
    fn set(cpus: &[usize]) {
        #[cfg(target_os = "linux")]
        // SAFETY: as above; sched_setaffinity only reads the set.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cpus {
                libc::CPU_SET(c, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = cpus;
    }

    /// This thread, pinned to one CPU until dropped.
    pub struct Pinned(Vec<usize>);

    impl Pinned {
        /// Pins this thread to `cpu`; `before` is restored on drop.
        pub fn to(cpu: usize, before: &[usize]) -> Pinned {
            set(&[cpu]);
            Pinned(before.to_vec())
        }
    }

    impl Drop for Pinned {
        fn drop(&mut self) {
            set(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// Blocks until `count` callers are in it at once (true), or gives up
    /// after ten seconds (false): tasks that meet here ran on distinct
    /// threads, however slowly a loaded machine schedules them.
    fn rendezvous(arrived: &AtomicUsize, count: usize) -> bool {
        arrived.fetch_add(1, SeqCst);
        let start = Instant::now();
        while arrived.load(SeqCst) < count {
            if start.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// Every task runs exactly once per phase, over many phases, with
    /// sleeps long enough for the followers to fall asleep in between.
    #[test]
    fn each_task_runs_once_per_phase() {
        for threads in [1, 2, 3] {
            pool(threads).install(|| {
                Team::scope(|team| {
                    assert_eq!(team.threads(), threads);
                    for phase in 0..200 {
                        let n = phase % 7;
                        let counts: Vec<AtomicUsize> =
                            (0..n).map(|_| AtomicUsize::new(0)).collect();
                        team.for_each(n, &|i| {
                            counts[i].fetch_add(1, SeqCst);
                        });
                        assert!(counts.iter().all(|c| c.load(SeqCst) == 1), "phase {phase}");
                        if phase % 50 == 0 {
                            std::thread::sleep(SPIN * 2);
                        }
                    }
                })
            });
        }
    }

    /// Many short phases on more threads than CPUs, so that threads are
    /// often descheduled mid-phase: a late thread never runs a task of a
    /// phase that has moved on, nor one twice.
    #[test]
    fn short_phases_with_descheduled_threads() {
        pool(3).install(|| {
            Team::scope(|team| {
                let counts: Vec<AtomicUsize> = (0..5).map(|_| AtomicUsize::new(0)).collect();
                for phase in 0..5_000 {
                    let n = 2 + phase % 4;
                    team.for_each(n, &|i| {
                        counts[i].fetch_add(1, SeqCst);
                    });
                    for (i, c) in counts.iter().enumerate() {
                        assert_eq!(c.swap(0, SeqCst), usize::from(i < n), "phase {phase}");
                    }
                }
            })
        });
    }

    /// A follower whose thread is busy when the phase starts joins it when
    /// free, and takes a task: the leader's task waits for the other to
    /// start. Why it matters: a trainer's epoch is one phase.
    #[test]
    fn a_follower_that_joins_late_takes_part_in_the_phase() {
        pool(2).install(|| {
            // Keeps the other thread busy: the team's follower job waits.
            rayon::spawn(|| std::thread::sleep(Duration::from_millis(50)));
            Team::scope(|team| {
                let arrived = AtomicUsize::new(0);
                let start = Instant::now();
                team.for_each(2, &|_| {
                    arrived.fetch_add(1, SeqCst);
                    while arrived.load(SeqCst) < 2 {
                        assert!(
                            start.elapsed() < Duration::from_secs(10),
                            "the follower never took a task"
                        );
                        std::hint::spin_loop();
                    }
                });
            });
        });
    }

    /// The followers run tasks too: two tasks that wait for each other
    /// both finish, so they ran at the same time, on two threads.
    #[test]
    fn followers_take_tasks() {
        pool(2).install(|| {
            Team::scope(|team| {
                // The follower joins when its thread picks the job up;
                // phases before that run on the leader alone.
                let start = Instant::now();
                while team.members.lock().unwrap().joined == 0 {
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "no follower joined"
                    );
                    std::thread::yield_now();
                }
                let arrived = AtomicUsize::new(0);
                let met = AtomicUsize::new(0);
                team.for_each(2, &|_| {
                    if rendezvous(&arrived, 2) {
                        met.fetch_add(1, SeqCst);
                    }
                });
                assert_eq!(met.load(SeqCst), 2);
            })
        });
    }

    /// Two teams at once in a pool of two threads: neither leader waits
    /// for a follower that the other holds; each runs what it can.
    #[test]
    fn two_teams_in_one_small_pool_both_finish() {
        let pool = pool(2);
        let sums: Vec<usize> = pool.install(|| {
            let (a, b) = rayon::join(
                || Team::scope(|team| count_tasks(team, 1000)),
                || Team::scope(|team| count_tasks(team, 1000)),
            );
            vec![a, b]
        });
        assert_eq!(sums, vec![1000 * 7, 1000 * 7]);
    }

    fn count_tasks(team: &Team, phases: usize) -> usize {
        let total = AtomicUsize::new(0);
        for _ in 0..phases {
            team.for_each(7, &|_| {
                total.fetch_add(1, SeqCst);
            });
        }
        total.into_inner()
    }

    /// Tasks that each wait for the one before them run once each, in
    /// order, on any number of threads.
    #[test]
    fn tasks_are_claimed_in_order_once_ready() {
        for threads in [1, 2, 3] {
            pool(threads).install(|| {
                Team::scope(|team| {
                    for n in [0, 1, 2, 9] {
                        let finished: Vec<AtomicBool> =
                            (0..n).map(|_| AtomicBool::new(false)).collect();
                        let order = Mutex::new(Vec::new());
                        team.for_each_when(n, &|i| i == 0 || finished[i - 1].load(SeqCst), &|i| {
                            order.lock().unwrap().push(i);
                            assert!(!finished[i].swap(true, SeqCst), "task {i} twice");
                        });
                        assert_eq!(order.into_inner().unwrap(), (0..n).collect::<Vec<_>>());
                    }
                })
            });
        }
    }

    /// A task's panic reaches the leader, and the team still stops.
    #[test]
    fn a_panic_in_a_task_reaches_the_leader() {
        let result = catch_unwind(|| {
            pool(2).install(|| {
                Team::scope(|team| {
                    team.for_each(8, &|i| {
                        assert_ne!(i, 5, "task five");
                    });
                })
            })
        });
        assert!(result.is_err());
    }

    /// While a team fills the CPUs, each of its threads runs on one CPU of
    /// its own; afterwards the leader may run anywhere again.
    #[cfg(target_os = "linux")]
    #[test]
    fn threads_are_pinned_apart_while_the_team_runs() {
        let cpus = affinity::allowed();
        assert!(!cpus.is_empty());
        let threads = cpus.len();
        if !(2..=8).contains(&threads) {
            return; // one CPU: nothing to pin apart; many: a test pool too big
        }
        pool(threads).install(|| {
            let seen = Mutex::new(Vec::new());
            Team::scope(|team| {
                let start = Instant::now();
                while team.members.lock().unwrap().joined < threads - 1 {
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "followers did not join"
                    );
                    std::thread::yield_now();
                }
                let arrived = AtomicUsize::new(0);
                team.for_each(threads, &|_| {
                    assert!(rendezvous(&arrived, threads), "tasks did not meet");
                    seen.lock().unwrap().push(affinity::allowed());
                });
            });
            let mut seen = seen.into_inner().unwrap();
            assert!(seen.iter().all(|c| c.len() == 1), "{seen:?}");
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), threads, "{seen:?}");
            assert_eq!(affinity::allowed(), cpus);
        });
    }
}
