//! Threads for work that must yield to ingest: the operators' evaluation,
//! the HTTP API and the history writer.
//!
//! faultline often runs on one core (a sidecar's CPU limit; the benchmarks
//! pin it there). On one core, a burst of analysis — an evaluation of a
//! closed window, the API building a graph view for every poll of a
//! dashboard — held the core while export calls waited, and showed in
//! their tail latency: at half load with visibility probes polling the API,
//! export p99 went from 2–3 ms to 9–11 ms. These threads run at a lower
//! priority ([`NICE`]), so the kernel hands the core to a receiver or a
//! shard as soon as one has work; on an idle core they run at full speed.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Mutex, PoisonError};

/// The nice value of background threads. Against a nice-0 thread that
/// wants the whole core, the kernel gives a nice-5 thread about a quarter
/// of it: analysis slows under full load rather than stopping.
pub const NICE: i32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    #[error("could not start thread {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("thread {0} stopped without an answer (it panicked)")]
    Panicked(String),
}

/// Lowers the calling thread's priority to [`NICE`], unless it is lower
/// already (Linux: nice values are per thread; elsewhere nothing happens).
/// Threads it starts inherit it.
pub fn lower_priority() {
    if current_nice() >= NICE {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes no pointers. With PRIO_PROCESS and id 0,
    // Linux applies it to the calling thread only.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, NICE) != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "background thread keeps its priority"
            );
        }
    }
}

/// Puts the calling thread under `SCHED_BATCH` (Linux with glibc;
/// elsewhere nothing happens). A `SCHED_BATCH` thread that is woken does
/// not preempt the thread running on its core; it waits for that thread to
/// block or for the scheduler tick. Its weight (nice 0) is unchanged, so it
/// keeps its share of a busy core, and a normal thread that wakes still
/// preempts it. For the graph's shards (see `graph::share_core`).
pub fn batch_policy() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: the pointer is to a live `sched_param`; with pid 0 Linux
    // applies the policy to the calling thread only.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "thread keeps its scheduling policy"
            );
        }
    }
}

/// Whether the calling thread runs under `SCHED_BATCH` (for tests).
pub fn is_batch_policy() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: sched_getscheduler takes no pointers.
    unsafe {
        libc::sched_getscheduler(0) == libc::SCHED_BATCH
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// The nice value of the calling thread (for tests and diagnostics).
pub fn current_nice() -> i32 {
    #[cfg(target_os = "linux")]
    // SAFETY: getpriority takes no pointers.
    unsafe {
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// Runs `work` on a new background thread named `name`; resolves with its
/// result without blocking the caller's runtime.
pub async fn run<T, F>(name: &str, work: F) -> Result<T, BackgroundError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(work());
        })
        .map_err(|source| BackgroundError::Spawn {
            name: name.to_owned(),
            source,
        })?;
    rx.await
        .map_err(|_| BackgroundError::Panicked(name.to_owned()))
}

/// A background thread that runs jobs one after another, for work that
/// recurs: the operators' evaluation of every closed window.
///
/// Why one long-lived thread rather than [`run`]'s thread per job: a job
/// comes every second (one per closed window), and a thread per job paid
/// for a thread's start and its allocator heap each time. (It was thought
/// to be the soak's RSS swing too; measured, it was not: see
/// `memory_limiter::tune_allocator`.) The thread starts with the first job
/// and stops when the worker is dropped; a job that panics fails its own
/// caller only.
pub struct Worker {
    name: String,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Worker {
    pub fn new(name: &str) -> Worker {
        Worker {
            name: name.to_owned(),
            jobs: Mutex::new(None),
        }
    }

    /// Runs `work` on the worker's thread, after the jobs queued before it;
    /// resolves with its result without blocking the caller's runtime.
    pub async fn run<T, F>(&self, work: F) -> Result<T, BackgroundError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        let panicked = || BackgroundError::Panicked(self.name.clone());
        self.sender()?.send(job).map_err(|_| panicked())?;
        rx.await.map_err(|_| panicked())
    }

    /// The queue of the worker's thread, started on first use.
    fn sender(&self) -> Result<mpsc::Sender<Job>, BackgroundError> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = jobs.as_ref() {
            return Ok(sender.clone());
        }
        let (sender, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                lower_priority();
                for job in queue {
                    // The job's caller sees the panic as `Panicked` (its
                    // answer channel is dropped); the thread goes on.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map_err(|source| BackgroundError::Spawn {
                name: self.name.clone(),
                source,
            })?;
        *jobs = Some(sender.clone());
        Ok(sender)
    }
}

/// Runs the future `make` returns on a background thread of its own, with
/// a single-threaded runtime (for a server: sockets must be registered
/// with the runtime that polls them, so `make` builds the server there).
pub async fn serve<M, F>(name: &str, make: M) -> anyhow::Result<()>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future<Output = anyhow::Result<()>>,
{
    run(name, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(make())
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_at_background_priority_and_answers() {
        let before = current_nice();
        let nice = run("faultline-test", current_nice).await.unwrap();
        assert_eq!(nice, NICE.max(before), "a background thread is niced");
        assert_eq!(current_nice(), before, "the caller's priority is unchanged");
        let served = serve("faultline-test-serve", || async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            listener.local_addr()?;
            Ok(())
        })
        .await;
        assert!(served.is_ok(), "{served:?}");
        let failed = run("faultline-test-panic", || -> u8 { panic!("on purpose") }).await;
        assert!(
            matches!(failed, Err(BackgroundError::Panicked(_))),
            "{failed:?}"
        );
    }

    /// The policy is the calling thread's alone: checked while the other
    /// thread still runs under it.
    #[test]
    fn the_batch_policy_is_the_calling_threads_own() {
        let (set, is_set) = std::sync::mpsc::channel();
        let (checked, is_checked) = std::sync::mpsc::channel::<()>();
        let batch = std::thread::spawn(move || {
            batch_policy();
            set.send(is_batch_policy()).unwrap();
            is_checked.recv().unwrap();
            is_batch_policy()
        });
        let supported = cfg!(all(target_os = "linux", target_env = "gnu"));
        assert_eq!(is_set.recv().unwrap(), supported);
        assert!(!is_batch_policy(), "the caller's policy is unchanged");
        checked.send(()).unwrap();
        assert_eq!(batch.join().unwrap(), supported, "and the thread keeps it");
    }

    #[tokio::test]
    async fn a_worker_runs_every_job_on_one_thread_and_survives_a_panic() {
        let worker = Worker::new("faultline-test-worker");
        let thread = || std::thread::current().id();
        let first = worker.run(thread).await.unwrap();
        let failed = worker.run(|| -> u8 { panic!("on purpose") }).await;
        assert!(
            matches!(failed, Err(BackgroundError::Panicked(_))),
            "{failed:?}"
        );
        let second = worker.run(thread).await.unwrap();
        assert_eq!(first, second, "the same thread, after the panic too");
        assert_ne!(first, std::thread::current().id());
        let nice = worker.run(current_nice).await.unwrap();
        assert_eq!(nice, NICE.max(current_nice()), "the worker is niced");
    }
}
