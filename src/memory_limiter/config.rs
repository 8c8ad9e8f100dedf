//! `processors.memory_limiter`: the Collector's `memory_limiter` settings.

use std::time::Duration;

use serde::Deserialize;

use super::LimiterError;

const MIB: u64 = 1 << 20;

/// Backpressure on memory, as the OpenTelemetry Collector's
/// `memory_limiter` processor: past the soft limit (`limit` − `spike`) the
/// OTLP receivers refuse new requests with RESOURCE_EXHAUSTED (gRPC) or 429
/// (HTTP) and a retry delay, so exporters back off and send again later;
/// nothing already accepted is dropped. Give either the `_mib` pair or the
/// `_percentage` pair, e.g.
///
/// ```yaml
/// memory_limiter:
///   check_interval: 1s
///   limit_mib: 1024
///   spike_limit_mib: 256
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLimiterConfig {
    /// How often the process's memory (RSS) is measured, e.g. `1s`. Shorter
    /// reacts sooner to a burst; each check reads one small /proc file.
    #[serde(
        default = "default_check_interval",
        deserialize_with = "crate::config::model::duration"
    )]
    pub check_interval: Duration,
    /// The hard limit, in MiB of RSS. A Rust process has no GC to force as
    /// the Collector does at this limit (the nearest, handing the
    /// allocator's free memory back, happens at every check over the soft
    /// limit), so this only places the soft limit; the spike allowance is
    /// the headroom for what arrives between two checks.
    #[serde(default)]
    pub limit_mib: Option<u64>,
    /// Headroom below the hard limit, in MiB; the soft limit, past which
    /// requests are refused, is `limit_mib - spike_limit_mib`. Defaults to
    /// 20% of `limit_mib`, as in the Collector.
    #[serde(default)]
    pub spike_limit_mib: Option<u64>,
    /// The hard limit as a percentage of the memory available (the cgroup's
    /// limit in a container, else the machine's), instead of `limit_mib`.
    #[serde(default)]
    pub limit_percentage: Option<u64>,
    /// Headroom as a percentage of the available memory, with `limit_percentage`.
    #[serde(default)]
    pub spike_limit_percentage: Option<u64>,
    /// The delay a refusal asks the exporter to wait before retrying, e.g.
    /// `1s` (gRPC `RetryInfo.retry_delay`, HTTP `Retry-After`, whole seconds).
    #[serde(
        default = "default_retry_after",
        deserialize_with = "crate::config::model::duration"
    )]
    pub retry_after: Duration,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_retry_after() -> Duration {
    Duration::from_secs(1)
}

/// The two limits in bytes, resolved from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub hard_bytes: u64,
    /// Past this, requests are refused.
    pub soft_bytes: u64,
}

impl MemoryLimiterConfig {
    /// Checks the settings that do not depend on the machine.
    pub fn validate(&self) -> Result<(), LimiterError> {
        let invalid = |m: &str| Err(LimiterError::Invalid(m.to_owned()));
        if self.check_interval.is_zero() {
            return invalid("check_interval must be above zero");
        }
        if self.retry_after.is_zero() {
            return invalid("retry_after must be above zero");
        }
        match (self.limit_mib, self.limit_percentage) {
            (Some(_), Some(_)) => invalid("give limit_mib or limit_percentage, not both"),
            (None, None) => invalid("give limit_mib (or limit_percentage)"),
            (Some(limit), None) => {
                if self.spike_limit_percentage.is_some() {
                    return invalid("with limit_mib, give spike_limit_mib (not a percentage)");
                }
                let spike = self.spike_limit_mib.unwrap_or(limit / 5);
                if limit == 0 || spike >= limit {
                    return invalid("limit_mib must be above zero and above spike_limit_mib");
                }
                Ok(())
            }
            (None, Some(pct)) => {
                if self.spike_limit_mib.is_some() {
                    return invalid("with limit_percentage, give spike_limit_percentage (not MiB)");
                }
                let spike = self.spike_limit_percentage.unwrap_or(pct / 5);
                if pct == 0 || pct > 100 || spike >= pct {
                    return invalid(
                        "limit_percentage must be 1..=100 and above spike_limit_percentage",
                    );
                }
                Ok(())
            }
        }
    }

    /// The limits in bytes; `total` is the memory available, for percentages.
    pub fn limits(&self, total: impl FnOnce() -> Option<u64>) -> Result<Limits, LimiterError> {
        self.validate()?;
        let (hard, spike) = match (self.limit_mib, self.limit_percentage) {
            (Some(limit), _) => (limit * MIB, self.spike_limit_mib.unwrap_or(limit / 5) * MIB),
            (None, Some(pct)) => {
                let total = total().ok_or(LimiterError::NoTotalMemory)?;
                let spike = self.spike_limit_percentage.unwrap_or(pct / 5);
                (total / 100 * pct, total / 100 * spike)
            }
            (None, None) => unreachable!("validate() requires a limit"),
        };
        Ok(Limits {
            hard_bytes: hard,
            soft_bytes: hard - spike,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> MemoryLimiterConfig {
        serde_yaml_ng::from_str(yaml).expect("parses")
    }

    #[test]
    fn the_spike_defaults_to_a_fifth_of_the_limit() {
        let c = parse("limit_mib: 1000");
        let l = c.limits(|| None).unwrap();
        assert_eq!(l.hard_bytes, 1000 * MIB);
        assert_eq!(l.soft_bytes, 800 * MIB);
        assert_eq!(c.check_interval, Duration::from_secs(1));
    }

    #[test]
    fn percentages_are_of_the_available_memory() {
        let c = parse("limit_percentage: 50\nspike_limit_percentage: 10");
        let l = c.limits(|| Some(1000 * MIB)).unwrap();
        assert_eq!(l.hard_bytes, 500 * MIB);
        assert_eq!(l.soft_bytes, 400 * MIB);
        assert!(matches!(
            c.limits(|| None),
            Err(LimiterError::NoTotalMemory)
        ));
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        for yaml in [
            "check_interval: 1s",
            "limit_mib: 100\nlimit_percentage: 50",
            "limit_mib: 100\nspike_limit_mib: 100",
            "limit_percentage: 101",
            "limit_mib: 100\nspike_limit_percentage: 10",
            "limit_mib: 100\ncheck_interval: 0s",
        ] {
            assert!(parse(yaml).validate().is_err(), "accepted {yaml:?}");
        }
        assert!(serde_yaml_ng::from_str::<MemoryLimiterConfig>("limit: 5").is_err());
    }
}
