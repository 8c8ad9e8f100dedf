//! How much memory the process uses, and how much the machine allows it.
//!
//! The limiter reads the process's resident set size (RSS) from
//! `/proc/self/status` once per `check_interval`. RSS rather than a count
//! kept by a global allocator, because RSS is what the kernel's OOM killer
//! and a container's memory limit charge: it includes allocator
//! fragmentation, thread stacks and the kernel's socket buffers that an
//! allocator counter never sees, and it costs nothing on the hot path (one
//! small file read per second, no atomic per allocation). Its drawback —
//! freed memory the allocator keeps shows as still used — errs on the safe
//! side for a limiter.

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of "memory in use", in bytes. The limiter asks it once per
/// check; tests substitute [`ManualProbe`] to decide the answer.
pub trait MemoryProbe: Send + Sync {
    /// Bytes in use now, or `None` when it cannot be measured (the limiter
    /// then admits everything rather than refusing on a guess).
    fn used_bytes(&self) -> Option<u64>;

    /// A bound on [`Self::used_bytes`] from above that is cheap to read;
    /// the limiter asks for the exact figure only when this bound reaches
    /// the soft limit. The exact figure by default.
    fn resident_bytes(&self) -> Option<u64> {
        self.used_bytes()
    }

    /// Frees what can be freed before the limiter measures again; called
    /// when a measure is over the soft limit. Nothing by default.
    fn reclaim(&self) {}
}

/// The process's RSS, from `/proc/self/status` (Linux), less the pages
/// freed with `MADV_FREE` that the kernel has not taken back yet
/// (`LazyFree` in `/proc/self/smaps_rollup`): the kernel reclaims those
/// before it runs out of memory, so they are not memory in use (see
/// [`tune_allocator`]).
///
/// RSS alone is the cheap bound ([`MemoryProbe::resident_bytes`]): reading
/// `smaps_rollup` walks every page table of the process in the kernel, 0.7
/// to 2 ms here, where nothing preempts it. Read every second on the
/// receivers' thread, that walk was the largest single stall of export
/// calls at half load on one core (see `docs/performance.md`, *Latency*).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessRss;

impl MemoryProbe for ProcessRss {
    fn used_bytes(&self) -> Option<u64> {
        let rss = self.resident_bytes()?;
        let lazy = std::fs::read_to_string("/proc/self/smaps_rollup")
            .ok()
            .and_then(|rollup| kib_field(&rollup, "LazyFree:"))
            .unwrap_or(0);
        Some(rss.saturating_sub(lazy * 1024))
    }

    fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        Some(kib_field(&status, "VmRSS:")? * 1024)
    }

    /// The Collector forces a garbage collection here; the nearest thing in
    /// a Rust process is handing the allocator's free memory back.
    fn reclaim(&self) {
        release_free_memory();
    }
}

/// Hands memory the allocators hold free back to the kernel: mimalloc's
/// (the binary's global allocator) and glibc's (what C libraries such as
/// librdkafka allocate).
///
/// An allocator keeps freed memory for reuse, so after a burst — an
/// evaluation over 10^5 edges allocates a few hundred MiB for a moment —
/// RSS can stay at the burst's peak. The limiter measures RSS, so without
/// this it saw the peak for good and refused every request from then on
/// while the heap itself was far below the limit (the soak's first runs).
pub fn release_free_memory() {
    // SAFETY: mi_collect only walks mimalloc's own pages and is safe to
    // call from any thread; when mimalloc is not the global allocator it
    // has next to nothing to collect.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes no
    // pointer from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long mimalloc keeps freed pages before purging them (mimalloc's
/// default is 1 s), unless `MIMALLOC_PURGE_DELAY` says otherwise.
pub const PURGE_DELAY_MS: i64 = 3_000;

/// Tunes mimalloc for a collector's load, unless the environment sets the
/// same options (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_PURGE_DECOMMITS`, which
/// win). Call once at start.
///
/// * Freed pages are purged with `MADV_FREE` rather than `MADV_DONTNEED`
///   (`purge_decommits` off). At 10^5 edges each window's evaluation
///   allocates a few hundred MiB and frees them within the second, and the
///   next window needs as much again. With `MADV_DONTNEED` the kernel took
///   those pages back at once and faulted and zeroed them in anew every
///   second, and RSS swung by that much from one sample to the next (the
///   soak's spread, 25–46%). With `MADV_FREE` the kernel takes them only
///   when it needs memory; until then reusing them costs nothing. They
///   still count in RSS, so the limiter measures RSS less `LazyFree`
///   ([`ProcessRss`]).
/// * Pages wait [`PURGE_DELAY_MS`] before the purge, a few windows.
pub fn tune_allocator() {
    set_unless_in_env("MIMALLOC_PURGE_DECOMMITS", MI_OPTION_PURGE_DECOMMITS, 0);
    set_unless_in_env(
        "MIMALLOC_PURGE_DELAY",
        MI_OPTION_PURGE_DELAY,
        PURGE_DELAY_MS,
    );
}

fn set_unless_in_env(var: &str, option: libmimalloc_sys::mi_option_t, value: i64) {
    if std::env::var_os(var).is_some() {
        return;
    }
    // SAFETY: mi_option_set stores one option's value; it is safe to call
    // from any thread at any time, and mimalloc reads it at each purge.
    unsafe { libmimalloc_sys::mi_option_set(option, value as _) }
}

/// Option numbers of mimalloc's `mi_option_t` (mimalloc.h, the same in
/// versions 2 and 3), which the `-sys` crate does not name.
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// A probe whose answer the caller sets: for tests and benchmarks that must
/// put the collector over (or under) its limit without allocating gigabytes.
#[derive(Debug, Default)]
pub struct ManualProbe {
    bytes: AtomicU64,
}

impl ManualProbe {
    pub fn new(bytes: u64) -> ManualProbe {
        ManualProbe {
            bytes: AtomicU64::new(bytes),
        }
    }

    pub fn set(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }
}

impl MemoryProbe for ManualProbe {
    fn used_bytes(&self) -> Option<u64> {
        Some(self.bytes.load(Ordering::Relaxed))
    }
}

/// Memory available to the process: the cgroup limit (v2 or v1) where one
/// is set, else the machine's total — what `limit_percentage` is a share of,
/// as in the Collector.
pub fn total_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let machine = meminfo
        .as_deref()
        .and_then(|m| kib_field(m, "MemTotal:"))
        .map(|kib| kib * 1024);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .filter_map(|t| t.trim().parse::<u64>().ok())
    .min();
    match (machine, cgroup) {
        // cgroup v1 reports "no limit" as a huge number; the machine bounds it.
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    }
}

/// The number in a `Key:   1234 kB` line of a /proc file.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let text = "Name:\tx\nVmRSS:\t   20480 kB\nVmSwap:\t0 kB\n";
        assert_eq!(kib_field(text, "VmRSS:"), Some(20480));
        assert_eq!(kib_field(text, "VmHWM:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_uses_some_memory_and_the_machine_has_more() {
        let used = ProcessRss.used_bytes().expect("RSS readable on Linux");
        let total = total_memory_bytes().expect("total memory readable on Linux");
        assert!(used > 1 << 20, "RSS {used} bytes");
        assert!(total > used, "total {total} <= used {used}");
    }

    /// 128 MiB touched, then freed with `MADV_FREE`: still in VmRSS (the
    /// kernel takes it back only under pressure), not in what is used.
    #[cfg(target_os = "linux")]
    #[test]
    fn lazily_freed_pages_count_in_rss_but_not_as_used() {
        const LEN: usize = 128 << 20;
        // SAFETY: a fresh private anonymous mapping, written and advised
        // only within its length, and unmapped before the test ends.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            std::ptr::write_bytes(p.cast::<u8>(), 1, LEN);
            assert_eq!(libc::madvise(p, LEN, libc::MADV_FREE), 0);
            let used = ProcessRss.used_bytes().expect("readable");
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let rss = kib_field(&status, "VmRSS:").unwrap() * 1024;
            libc::munmap(p, LEN);
            assert!(
                used + (96 << 20) <= rss,
                "used {used} should be at least 96 MiB under RSS {rss}"
            );
        }
    }

    #[test]
    fn the_allocator_is_tuned_to_purge_lazily() {
        tune_allocator();
        // SAFETY: mi_option_get reads one option's value.
        let (decommits, delay) = unsafe {
            (
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DECOMMITS),
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            )
        };
        if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_none() {
            assert_eq!(decommits, 0);
        }
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(delay, PURGE_DELAY_MS as std::ffi::c_long);
        }
    }

    #[test]
    fn a_manual_probe_answers_what_it_was_told() {
        let p = ManualProbe::new(5);
        assert_eq!(p.used_bytes(), Some(5));
        p.set(7);
        assert_eq!(p.used_bytes(), Some(7));
    }
}
