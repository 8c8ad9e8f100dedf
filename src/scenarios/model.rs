//! The scenario model: one runnable failure scenario, as JSON or YAML.
//!
//! This is a public contract (`docs/scenarios.md`, later `/api/scenarios`
//! and the `faultline.scenarios` topic): add fields, never rename them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::graph::partial::NodeKind;
use crate::operators::{ScoreComponent, Target};

/// A failure to try on purpose, with what should stay true while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Stable: a hash of the target key, the fault kind and its parameters.
    pub id: String,
    /// 1 is the first to run.
    pub rank: usize,
    pub title: String,
    /// The edge or destination the fault is about (the same keys as
    /// signals and hotspots, so its signals can be read back).
    pub target: Target,
    pub fault: Fault,
    /// Where the fault is applied.
    pub inject: Injection,
    pub duration_s: u64,
    pub hypothesis: Hypothesis,
    pub guardrails: Guardrails,
    /// What to watch while it runs: the signals that will show the outcome.
    pub signals: Vec<Watch>,
    pub evidence: Evidence,
    pub source: Source,
    /// Rule points + the target's hotspot score + anomaly points.
    pub priority: f64,
}

/// The document `--render json|yaml` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSet {
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Latency,
    LatencyJitter,
    Timeout,
    ResetPeer,
    DropConnections,
    Bandwidth,
    Down,
    RetryStorm,
    SlowConsumer,
    Reorder,
    CacheDegradation,
    CpuPressure,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::Latency,
        FaultKind::LatencyJitter,
        FaultKind::Timeout,
        FaultKind::ResetPeer,
        FaultKind::DropConnections,
        FaultKind::Bandwidth,
        FaultKind::Down,
        FaultKind::RetryStorm,
        FaultKind::SlowConsumer,
        FaultKind::Reorder,
        FaultKind::CacheDegradation,
        FaultKind::CpuPressure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::LatencyJitter => "latency_jitter",
            FaultKind::Timeout => "timeout",
            FaultKind::ResetPeer => "reset_peer",
            FaultKind::DropConnections => "drop_connections",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::Down => "down",
            FaultKind::RetryStorm => "retry_storm",
            FaultKind::SlowConsumer => "slow_consumer",
            FaultKind::Reorder => "reorder",
            FaultKind::CacheDegradation => "cache_degradation",
            FaultKind::CpuPressure => "cpu_pressure",
        }
    }

    /// Whether the fault acts on a messaging destination (else on an edge).
    pub fn on_destination(self) -> bool {
        matches!(self, FaultKind::SlowConsumer | FaultKind::Reorder)
    }

    /// (required, optional) parameters. Cache degradation needs exactly one
    /// of its two: slowed (`latency_ms`) or down (`loss_percent: 100`).
    pub fn param_names(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            FaultKind::Latency | FaultKind::SlowConsumer => (&["latency_ms"], &[]),
            FaultKind::LatencyJitter => (&["latency_ms", "jitter_ms"], &["correlation_percent"]),
            FaultKind::Timeout => (&["timeout_ms"], &[]),
            FaultKind::ResetPeer | FaultKind::RetryStorm => (&["error_percent"], &[]),
            FaultKind::DropConnections => (&["loss_percent"], &["correlation_percent"]),
            FaultKind::Bandwidth => (&["rate_kbps"], &[]),
            FaultKind::Down => (&[], &[]),
            FaultKind::Reorder => (
                &["reorder_percent", "latency_ms"],
                &["correlation_percent", "jitter_ms"],
            ),
            FaultKind::CacheDegradation => (&[], &["latency_ms", "loss_percent"]),
            FaultKind::CpuPressure => (&["cpu_load_percent", "cpu_workers"], &[]),
        }
    }

    /// Checks that `params` are the ones this kind takes, within bounds.
    pub fn check(self, params: &FaultParams) -> Result<(), String> {
        let (required, optional) = self.param_names();
        let present = params.present();
        for name in &present {
            if !required.contains(name) && !optional.contains(name) {
                return Err(format!("{name} does not apply to {self}"));
            }
        }
        if let Some(missing) = required.iter().find(|r| !present.contains(r)) {
            return Err(format!("{self} needs {missing}"));
        }
        if self == FaultKind::CacheDegradation && present.len() != 1 {
            return Err(
                "cache_degradation takes latency_ms (slowed) or loss_percent (down)".into(),
            );
        }
        params.bounds()
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown fault kind {s:?} (known: {})", known.join(", "))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub params: FaultParams,
}

/// Fault parameters; which ones a kind takes is in `docs/scenarios.md`.
/// Integers only, so the id hash never depends on float formatting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultParams {
    /// Delay added to each call (or message), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// ± variation around `latency_ms`, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// How long a hung dependency holds a connection before closing it
    /// (0: never), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Share of packets dropped (100: unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_percent: Option<u32>,
    /// Share of calls (connections) failed or reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_percent: Option<u32>,
    /// Throughput cap, kilobytes (1000 B) per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_kbps: Option<u64>,
    /// Share of messages (packets) delivered out of order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder_percent: Option<u32>,
    /// How much each random draw depends on the previous one (netem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_load_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_workers: Option<u32>,
}

/// Ten minutes: the longest delay or hang a scenario may ask for.
const MAX_MS: u64 = 600_000;

impl FaultParams {
    fn present(&self) -> Vec<&'static str> {
        let flags = [
            ("latency_ms", self.latency_ms.is_some()),
            ("jitter_ms", self.jitter_ms.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
            ("loss_percent", self.loss_percent.is_some()),
            ("error_percent", self.error_percent.is_some()),
            ("rate_kbps", self.rate_kbps.is_some()),
            ("reorder_percent", self.reorder_percent.is_some()),
            ("correlation_percent", self.correlation_percent.is_some()),
            ("cpu_load_percent", self.cpu_load_percent.is_some()),
            ("cpu_workers", self.cpu_workers.is_some()),
        ];
        flags.iter().filter(|f| f.1).map(|f| f.0).collect()
    }

    fn bounds(&self) -> Result<(), String> {
        let ms = [
            ("latency_ms", self.latency_ms, 1),
            ("jitter_ms", self.jitter_ms, 0),
            ("timeout_ms", self.timeout_ms, 0),
        ];
        for (name, value, min) in ms {
            if let Some(v) = value.filter(|v| *v < min || *v > MAX_MS) {
                return Err(format!("{name} {v} is outside {min}..={MAX_MS}"));
            }
        }
        let percents = [
            ("loss_percent", self.loss_percent, 1),
            ("error_percent", self.error_percent, 1),
            ("reorder_percent", self.reorder_percent, 1),
            ("correlation_percent", self.correlation_percent, 0),
            ("cpu_load_percent", self.cpu_load_percent, 1),
        ];
        for (name, value, min) in percents {
            if let Some(v) = value.filter(|v| *v < min || *v > 100) {
                return Err(format!("{name} {v} is outside {min}..=100"));
            }
        }
        if let Some(v) = self.rate_kbps.filter(|v| *v == 0 || *v > 10_000_000) {
            return Err(format!("rate_kbps {v} is outside 1..=10000000"));
        }
        if let Some(v) = self.cpu_workers.filter(|v| *v == 0 || *v > 8192) {
            return Err(format!("cpu_workers {v} is outside 1..=8192"));
        }
        Ok(())
    }

    /// Latency the fault adds to each call it touches, for guardrails and
    /// hypotheses (0 for faults that fail calls instead).
    pub fn added_ms(&self) -> u64 {
        self.latency_ms.unwrap_or(0) + self.jitter_ms.unwrap_or(0)
    }
}

/// A node as a workload the fault is applied to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    pub kind: NodeKind,
    /// `db.system` / `messaging.system` of a virtual node.
    pub system: Option<String>,
    pub k8s_namespace: Option<String>,
    pub k8s_deployment: Option<String>,
}

/// Where the fault acts: on `on`'s pods (CPU, slow consumer) or on the
/// traffic from `on` towards `towards` (network and HTTP faults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injection {
    pub on: Workload,
    pub towards: Option<Workload>,
}

/// What should stay true while the fault runs: the five signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    pub text: String,
    /// Edge keys whose error rate must stay within tolerance (every
    /// boundary of the impacted path except the faulted one).
    pub boundaries: Vec<String>,
    /// The impacted path's key and the p99 it must stay under.
    pub path: Option<String>,
    pub max_path_p99_ms: Option<f64>,
    /// Attempts per logical call on the target edge, at most.
    pub max_retry_amplification: Option<f64>,
    /// Destination keys whose depth must drain back.
    pub queues: Vec<String>,
    /// Every watched signal back within tolerance this long after the
    /// fault is removed.
    pub recover_within_s: u64,
}

/// Abort the run when the entry service degrades past these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guardrails {
    /// The service requests enter by (root of the impacted path).
    pub entry: Workload,
    pub max_error_rate: f64,
    pub max_p99_ms: f64,
    /// What the entry showed before: the reference for both limits.
    pub observed_error_rate: f64,
    pub observed_p99_ms: f64,
}

/// One signal to watch: a target key and a signal name as
/// `GET /api/signals` reports them (`time_to_recover` is measured by the
/// experiment itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    pub key: String,
    pub signal: String,
    pub why: String,
}

/// Why the scenario exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The rule that fired (`llm` for LLM scenarios).
    pub rule: String,
    /// Why it fired, in words.
    pub why: String,
    /// The numbers read off the graph that made it fire.
    pub observed: BTreeMap<String, f64>,
    /// The hotspots of the target and of its impacted path, with the
    /// components of their scores (only the target's counts in priority).
    pub hotspots: Vec<HotspotEvidence>,
    /// Ids of anomalies active on the target or its impacted path.
    pub anomalies: Vec<String>,
    /// How the priority adds up: `rule`, `hotspot`, `anomalies`.
    pub points: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotspotEvidence {
    pub key: String,
    pub rank: usize,
    pub score: f64,
    pub components: Vec<ScoreComponent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Rules,
    Llm,
}

/// 64-bit FNV-1a: tiny, and the same in every process and on every
/// machine, unlike std's randomly seeded hasher.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The scenario id: 12 hex digits of FNV-1a over the target key, the
/// fault kind and its parameters (as JSON, in declaration order).
pub fn scenario_id(target: &Target, fault: &Fault) -> String {
    let params = serde_json::to_string(&fault.params).unwrap_or_default();
    let text = format!("{}|{}|{}", target.key(), fault.kind, params);
    format!("{:012x}", fnv1a(text.as_bytes()) & 0xffff_ffff_ffff)
}

/// Rounds for output: three decimals keeps the documents readable and
/// stable against the last bits of float arithmetic.
pub fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::partial::EdgeKind;

    #[test]
    fn id_is_stable_and_depends_on_target_kind_and_params() {
        let target = Target::edge("checkout", "payments", EdgeKind::Rpc);
        let fault = Fault {
            kind: FaultKind::Latency,
            params: FaultParams {
                latency_ms: Some(800),
                ..FaultParams::default()
            },
        };
        let id = scenario_id(&target, &fault);
        // Pinned: ids are stored by users and experiment records, so this
        // value must never change (FNV-1a of
        // `edge:checkout->payments|latency|{"latency_ms":800}`).
        assert_eq!(id, "569ceede05a1");
        assert_eq!(id.len(), 12);
        let mut slower = fault.clone();
        slower.params.latency_ms = Some(900);
        assert_ne!(scenario_id(&target, &slower), id);
        let other = Target::edge("checkout", "orders", EdgeKind::Rpc);
        assert_ne!(scenario_id(&other, &fault), id);
        // FNV-1a's published test vector.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn params_are_checked_per_kind() {
        let p = |f: fn(&mut FaultParams)| {
            let mut p = FaultParams::default();
            f(&mut p);
            p
        };
        assert!(FaultKind::Down.check(&FaultParams::default()).is_ok());
        let err = FaultKind::Latency
            .check(&FaultParams::default())
            .unwrap_err();
        assert!(err.contains("needs latency_ms"), "{err}");
        let err = FaultKind::Down
            .check(&p(|p| p.latency_ms = Some(5)))
            .unwrap_err();
        assert!(err.contains("does not apply"), "{err}");
        let err = FaultKind::DropConnections
            .check(&p(|p| p.loss_percent = Some(101)))
            .unwrap_err();
        assert!(err.contains("outside"), "{err}");
        assert!(FaultKind::CacheDegradation
            .check(&p(|p| {
                p.latency_ms = Some(5);
                p.loss_percent = Some(100);
            }))
            .is_err());
        assert!("meteor_strike".parse::<FaultKind>().is_err());
        for k in FaultKind::ALL {
            assert_eq!(k.as_str().parse::<FaultKind>(), Ok(k));
        }
    }
}
