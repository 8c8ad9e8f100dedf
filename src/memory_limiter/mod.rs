//! Memory backpressure, after the OpenTelemetry Collector's `memory_limiter`.
//!
//! A task measures the process's memory every `check_interval` and flips
//! one flag when it crosses the soft limit; the receivers read that flag
//! (one relaxed atomic load per request) and, while it is set, refuse the
//! request whole with a retry delay — RESOURCE_EXHAUSTED with `RetryInfo`
//! over gRPC, 429 with `Retry-After` over HTTP — which OTLP exporters
//! answer by waiting and sending the same data again. Refusing at the door
//! rather than dropping inside means nothing already accepted is lost and
//! nothing is lost silently: the exporter keeps the data, and every refusal
//! is counted in `/metrics`.

mod config;
mod probe;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use config::{Limits, MemoryLimiterConfig};
pub use probe::{
    release_free_memory, total_memory_bytes, tune_allocator, ManualProbe, MemoryProbe, ProcessRss,
};

use crate::telemetry::Telemetry;

/// While refusing, a summary is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "limit_percentage needs the available memory, which cannot be read here; use limit_mib"
    )]
    NoTotalMemory,
}

/// Why a request was refused, for the receiver's reply.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// How long the exporter should wait before sending again.
    pub retry_after: Duration,
    pub used_bytes: u64,
    pub soft_limit_bytes: u64,
}

impl Refusal {
    pub fn message(&self) -> String {
        format!(
            "faultline is over its memory limit ({} MiB used, soft limit {} MiB); retry after {:?}",
            self.used_bytes >> 20,
            self.soft_limit_bytes >> 20,
            self.retry_after
        )
    }
}

/// The shared limiter: measured by [`MemoryLimiter::run`], read by receivers.
pub struct MemoryLimiter {
    probe: Arc<dyn MemoryProbe>,
    limits: Limits,
    check_interval: Duration,
    retry_after: Duration,
    telemetry: Arc<Telemetry>,
    refusing: AtomicBool,
    used: AtomicU64,
    refused: AtomicU64,
    log: Mutex<LogState>,
}

/// What the rate-limited log lines need to remember.
#[derive(Default)]
struct LogState {
    last: Option<Instant>,
    refused_at_last: u64,
    refused_at_start: u64,
}

impl MemoryLimiter {
    /// A limiter over `probe`; percentages resolve against the memory
    /// available to this process.
    pub fn new(
        config: &MemoryLimiterConfig,
        probe: Arc<dyn MemoryProbe>,
        telemetry: Arc<Telemetry>,
    ) -> Result<MemoryLimiter, LimiterError> {
        let limits = config.limits(total_memory_bytes)?;
        telemetry.memory_limits(limits.soft_bytes, limits.hard_bytes);
        Ok(MemoryLimiter {
            probe,
            limits,
            check_interval: config.check_interval,
            retry_after: config.retry_after,
            telemetry,
            refusing: AtomicBool::new(false),
            used: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            log: Mutex::default(),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Admits a request, or says why not (the receivers' hot path: one load).
    pub fn admit(&self, receiver: &'static str) -> Result<(), Refusal> {
        if !self.refusing.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.telemetry.memory_refused(receiver);
        tracing::debug!(receiver, "request refused: over the memory limit");
        Err(Refusal {
            retry_after: self.retry_after,
            used_bytes: self.used.load(Ordering::Relaxed),
            soft_limit_bytes: self.limits.soft_bytes,
        })
    }

    /// Measures once and sets the refusing state; returns it. Called every
    /// `check_interval` by [`MemoryLimiter::run`], and by tests that need the
    /// state to follow a [`ManualProbe`] without waiting for the timer.
    ///
    /// Under the soft limit the cheap bound is the measure (and the gauge);
    /// at or over it, the exact one decides.
    pub fn check(&self) -> bool {
        let measured = self.probe.resident_bytes().map(|bound| {
            if bound < self.limits.soft_bytes {
                bound
            } else {
                // Unreadable, the bound decides: it errs on the safe side.
                self.probe.used_bytes().unwrap_or(bound)
            }
        });
        let Some(mut used) = measured else {
            // Unmeasurable: admit rather than refuse on a guess.
            self.refusing.store(false, Ordering::Relaxed);
            return false;
        };
        if used >= self.limits.soft_bytes {
            self.probe.reclaim();
            used = self.probe.used_bytes().unwrap_or(used);
        }
        self.used.store(used, Ordering::Relaxed);
        let refusing = used >= self.limits.soft_bytes;
        let was = self.refusing.swap(refusing, Ordering::Relaxed);
        self.telemetry.memory_checked(used, refusing);
        self.log(was, refusing, used);
        refusing
    }

    /// Logs entering and leaving the refusing state, and while in it a
    /// summary at most every [`LOG_EVERY`], never a line per request.
    fn log(&self, was: bool, refusing: bool, used: u64) {
        let refused = self.refused.load(Ordering::Relaxed);
        let mut log = self.log.lock();
        let (used_mib, soft_mib, hard_mib) = (
            used >> 20,
            self.limits.soft_bytes >> 20,
            self.limits.hard_bytes >> 20,
        );
        match (was, refusing) {
            (false, true) => {
                tracing::warn!(
                    used_mib,
                    soft_mib,
                    hard_mib,
                    "over the soft memory limit: refusing OTLP requests with a retry delay"
                );
                *log = LogState {
                    last: Some(Instant::now()),
                    refused_at_last: refused,
                    refused_at_start: refused,
                };
            }
            (true, false) => tracing::info!(
                used_mib,
                soft_mib,
                refused_requests = refused - log.refused_at_start,
                "back under the soft memory limit: accepting OTLP requests again"
            ),
            (true, true) if log.last.is_none_or(|t| t.elapsed() >= LOG_EVERY) => {
                tracing::warn!(
                    used_mib,
                    soft_mib,
                    refused_requests = refused - log.refused_at_last,
                    "still over the soft memory limit"
                );
                log.last = Some(Instant::now());
                log.refused_at_last = refused;
            }
            _ => {}
        }
    }

    /// Checks every `check_interval` until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut interval = tokio::time::interval(self.check_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = interval.tick() => { self.check(); }
                _ = &mut shutdown => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(probe: Arc<dyn MemoryProbe>) -> MemoryLimiter {
        let config: MemoryLimiterConfig =
            serde_yaml_ng::from_str("limit_mib: 100\nspike_limit_mib: 20\nretry_after: 2s")
                .unwrap();
        MemoryLimiter::new(&config, probe, Arc::new(Telemetry::new())).unwrap()
    }

    #[test]
    fn refuses_from_the_soft_limit_until_back_under_it() {
        let probe = Arc::new(ManualProbe::new(79 << 20));
        let l = limiter(probe.clone());
        assert!(!l.check());
        assert!(l.admit("otlp_grpc").is_ok());
        probe.set(80 << 20);
        assert!(l.check());
        let refusal = l.admit("otlp_grpc").unwrap_err();
        assert_eq!(refusal.retry_after, Duration::from_secs(2));
        assert_eq!(refusal.soft_limit_bytes, 80 << 20);
        assert!(
            refusal.message().contains("80 MiB used"),
            "{}",
            refusal.message()
        );
        probe.set(10 << 20);
        assert!(!l.check());
        assert!(l.admit("otlp_http").is_ok());
        assert_eq!(l.refused.load(Ordering::Relaxed), 1);
    }

    /// Memory the probe can reclaim (glibc's free pages, in production)
    /// does not count: the limiter reclaims and measures again before it
    /// refuses.
    #[test]
    fn reclaims_before_refusing() {
        struct Freeing {
            used: ManualProbe,
            reclaimable: u64,
            reclaims: AtomicU64,
        }
        impl MemoryProbe for Freeing {
            fn used_bytes(&self) -> Option<u64> {
                self.used.used_bytes()
            }
            fn reclaim(&self) {
                self.reclaims.fetch_add(1, Ordering::Relaxed);
                let now = self.used.used_bytes().unwrap_or(0);
                self.used.set(now.saturating_sub(self.reclaimable));
            }
        }
        let config: MemoryLimiterConfig =
            serde_yaml_ng::from_str("limit_mib: 100\nspike_limit_mib: 20").unwrap();
        let probe = Arc::new(Freeing {
            used: ManualProbe::new(90 << 20),
            reclaimable: 30 << 20,
            reclaims: AtomicU64::new(0),
        });
        let l = MemoryLimiter::new(&config, probe.clone(), Arc::new(Telemetry::new())).unwrap();
        assert!(
            !l.check(),
            "60 MiB after reclaiming is under the soft limit"
        );
        assert_eq!(probe.reclaims.load(Ordering::Relaxed), 1);
        assert!(l.admit("otlp_grpc").is_ok());
        // Under the soft limit, nothing is reclaimed.
        assert!(!l.check());
        assert_eq!(probe.reclaims.load(Ordering::Relaxed), 1);
        // What cannot be reclaimed still refuses.
        probe.used.set(120 << 20);
        assert!(l.check(), "90 MiB after reclaiming is over the soft limit");
        assert!(l.admit("otlp_grpc").is_err());
    }

    /// The exact measure (in production a walk of every page table) is
    /// read only when the cheap bound reaches the soft limit, and then it
    /// decides.
    #[test]
    fn reads_the_exact_measure_only_at_the_soft_limit() {
        struct TwoReadings {
            resident: ManualProbe,
            used: ManualProbe,
            exact_reads: AtomicU64,
        }
        impl MemoryProbe for TwoReadings {
            fn used_bytes(&self) -> Option<u64> {
                self.exact_reads.fetch_add(1, Ordering::Relaxed);
                self.used.used_bytes()
            }
            fn resident_bytes(&self) -> Option<u64> {
                self.resident.used_bytes()
            }
        }
        let probe = Arc::new(TwoReadings {
            resident: ManualProbe::new(70 << 20),
            used: ManualProbe::new(60 << 20),
            exact_reads: AtomicU64::new(0),
        });
        let l = limiter(probe.clone());
        assert!(!l.check());
        assert_eq!(probe.exact_reads.load(Ordering::Relaxed), 0);
        assert_eq!(
            l.used.load(Ordering::Relaxed),
            70 << 20,
            "the bound is the measure"
        );
        // At the soft limit by the bound, under it by the exact measure.
        probe.resident.set(80 << 20);
        assert!(!l.check());
        assert_eq!(probe.exact_reads.load(Ordering::Relaxed), 1);
        assert_eq!(l.used.load(Ordering::Relaxed), 60 << 20);
        probe.resident.set(90 << 20);
        assert!(!l.check());
        assert_eq!(probe.exact_reads.load(Ordering::Relaxed), 2);
        assert_eq!(l.used.load(Ordering::Relaxed), 60 << 20);
        // Over by both: refused, on the exact figure.
        probe.used.set(85 << 20);
        assert!(l.check());
        assert_eq!(l.admit("otlp_grpc").unwrap_err().used_bytes, 85 << 20);
    }

    /// When only the exact read fails, the bound decides: over the soft
    /// limit it refuses, erring on the safe side.
    #[test]
    fn the_bound_decides_when_the_exact_read_fails() {
        struct BoundOnly(ManualProbe);
        impl MemoryProbe for BoundOnly {
            fn used_bytes(&self) -> Option<u64> {
                None
            }
            fn resident_bytes(&self) -> Option<u64> {
                self.0.used_bytes()
            }
        }
        let probe = Arc::new(BoundOnly(ManualProbe::new(90 << 20)));
        let l = limiter(probe.clone());
        assert!(l.check(), "90 MiB by the bound is over the soft limit");
        assert_eq!(l.admit("otlp_grpc").unwrap_err().used_bytes, 90 << 20);
        probe.0.set(50 << 20);
        assert!(!l.check());
        assert!(l.admit("otlp_grpc").is_ok());
    }

    #[test]
    fn an_unreadable_probe_admits() {
        struct Blind;
        impl MemoryProbe for Blind {
            fn used_bytes(&self) -> Option<u64> {
                None
            }
        }
        let config: MemoryLimiterConfig = serde_yaml_ng::from_str("limit_mib: 1").unwrap();
        let l = MemoryLimiter::new(&config, Arc::new(Blind), Arc::new(Telemetry::new())).unwrap();
        assert!(!l.check());
        assert!(l.admit("otlp_grpc").is_ok());
    }
}
