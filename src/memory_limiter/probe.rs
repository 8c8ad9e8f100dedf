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

    /// Frees what can be freed before the limiter measures again; called
    /// when a measure is over the soft limit. Nothing by default.
    fn reclaim(&self) {}
}

/// The process's RSS, from `/proc/self/status` (Linux).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessRss;

impl MemoryProbe for ProcessRss {
    fn used_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        kib_field(&status, "VmRSS:").map(|kib| kib * 1024)
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

    #[test]
    fn a_manual_probe_answers_what_it_was_told() {
        let p = ManualProbe::new(5);
        assert_eq!(p.used_bytes(), Some(5));
        p.set(7);
        assert_eq!(p.used_bytes(), Some(7));
    }
}
