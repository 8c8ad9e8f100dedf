//! What an experiment does: the fault to inject, where, for how long, what
//! to watch, when to abort and what counts as the expected outcome.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One experiment, independent of how it was generated. A scenario (rules
/// or LLM) becomes a plan by naming the proxy and toxics that realise it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The scenario id (stable across runs, so runs of it form a trend).
    pub scenario_id: String,
    pub title: String,
    /// The target key the fault is aimed at (`edge:orders->payments`).
    pub target: String,
    /// Target keys whose signals are watched; the target first. Paths
    /// through the target belong here too.
    pub watch: Vec<String>,
    /// The Toxiproxy proxy the fault goes through.
    pub proxy: String,
    /// Toxic bodies as the Toxiproxy API takes them (`POST /proxies/{p}/toxics`).
    #[serde(default)]
    pub toxics: Vec<serde_json::Value>,
    /// Take the dependency down (`enabled: false`) instead of, or besides, toxics.
    #[serde(default)]
    pub disable_proxy: bool,
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    #[serde(default)]
    pub guardrails: Guardrails,
    #[serde(default)]
    pub hypothesis: Hypothesis,
}

/// Abort early (and remove the fault) when the entry edge degrades past these.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// The key checked; the target when unset.
    pub key: Option<String>,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
}

/// What should stay true while the fault is on. Unset limits are not checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Hypothesis {
    /// Every watched target's error rate stays at or below this.
    pub max_error_rate: Option<f64>,
    /// Every watched target's p99 stays at or below this.
    pub max_p99_ms: Option<f64>,
    /// The target's attempts per logical call stay at or below this.
    pub max_retry_amplification: Option<f64>,
    /// `key/signal` pairs that must stay within their baseline band while
    /// the fault is on (e.g. the error rate of the boundaries around it).
    pub steady: Vec<String>,
    /// The system is back within its baseline tolerance this soon after
    /// the fault is removed.
    #[serde(with = "humantime_serde_compat")]
    pub recover_within: Duration,
}

impl Default for Hypothesis {
    fn default() -> Self {
        Hypothesis {
            max_error_rate: None,
            max_p99_ms: None,
            max_retry_amplification: None,
            steady: Vec::new(),
            recover_within: Duration::from_secs(10),
        }
    }
}

/// How the runner works, from the pipeline or the command line.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The Toxiproxy API (faultline's own proxy or a real Toxiproxy).
    pub proxy_url: String,
    /// How long the steady state is sampled before injecting.
    pub baseline: Duration,
    /// How often signals are sampled.
    pub tick: Duration,
    /// Consecutive in-tolerance samples that count as recovered.
    pub recover_ticks: usize,
    /// Give up waiting for recovery after this long.
    pub recover_limit: Duration,
    /// Multiplier on the feedback weight of targets an unexpected run touched.
    pub feedback_factor: f64,
    /// Where journals, results and reports go.
    pub data_dir: std::path::PathBuf,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            proxy_url: "http://127.0.0.1:8474".into(),
            baseline: Duration::from_secs(30),
            tick: Duration::from_secs(1),
            recover_ticks: 3,
            recover_limit: Duration::from_secs(120),
            feedback_factor: 1.5,
            data_dir: "./faultline-data".into(),
        }
    }
}

/// Durations as humantime text (`30s`) in JSON and YAML.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
