//! `ScenarioSettings`: the knobs of scenario generation and rendering.
//!
//! Shaped to sit under `processors.scenarios` in the pipeline YAML, like the
//! other processors: every struct refuses unknown keys, every field has a
//! default, and each doc comment is the user documentation of its key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::model::duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScenarioSettings {
    /// Scenarios kept after ranking (`--top` overrides it).
    pub max_scenarios: usize,
    /// At most this many scenarios per target, so the list covers several
    /// places instead of every fault on the riskiest edge.
    pub max_per_target: usize,
    /// Edges and destinations with fewer calls (or messages) are ignored.
    pub min_calls: u64,
    /// How long each fault is applied, e.g. `60s`.
    #[serde(deserialize_with = "duration")]
    pub duration: Duration,
    /// Time the target's signals get to come back within tolerance after
    /// the fault is removed (the "time to recover" of the hypothesis).
    #[serde(deserialize_with = "duration")]
    pub recover_within: Duration,
    /// The fixed latency of the dependency-latency rule, in ms.
    pub latency_ms: u64,
    /// The second latency scenario adds this multiple of the edge's own p99.
    pub latency_p99_factor: f64,
    /// How long a hung dependency holds a call before closing it, in ms.
    pub hang_ms: u64,
    /// Share of packets dropped by the drop-connections rule.
    pub loss_percent: u32,
    /// Share of calls failed to set off a retry storm (and of connections
    /// reset by the reset rule).
    pub error_percent: u32,
    /// Throttle of the bandwidth rule, in kilobytes per second.
    pub bandwidth_kbps: u64,
    /// Delay added to each message a slow consumer handles, in ms.
    pub consumer_delay_ms: u64,
    /// Messages reordered by the reorder rule, in percent.
    pub reorder_percent: u32,
    /// CPU load of the CPU-pressure rule, in percent, and its workers.
    pub cpu_load_percent: u32,
    pub cpu_workers: u32,
    /// A cache edge (or a database one) is "slow" past this p99, in ms.
    pub slow_cache_ms: f64,
    /// A destination is backed up past this mean lag, in ms.
    pub slow_queue_ms: f64,
    /// `db.system` values that name a cache rather than a database.
    pub cache_systems: Vec<String>,
    /// Extra attempts per logical call callers may make under a fault (the
    /// retry budget of the hypothesis: 0.2 = 20% more calls).
    pub retry_budget: f64,
    pub guardrails: GuardrailSettings,
    pub kubernetes: KubernetesSettings,
    pub toxiproxy: ToxiproxySettings,
    /// faultline's own API, which Chaos Toolkit experiments probe.
    pub faultline_url: String,
    /// The optional LLM generator; absent means rules only.
    pub llm: Option<LlmSettings>,
}

impl Default for ScenarioSettings {
    fn default() -> Self {
        ScenarioSettings {
            max_scenarios: 20,
            max_per_target: 3,
            min_calls: 1,
            duration: Duration::from_secs(60),
            recover_within: Duration::from_secs(30),
            latency_ms: 800,
            latency_p99_factor: 2.0,
            hang_ms: 30_000,
            loss_percent: 30,
            error_percent: 50,
            bandwidth_kbps: 100,
            consumer_delay_ms: 500,
            reorder_percent: 25,
            cpu_load_percent: 80,
            cpu_workers: 2,
            slow_cache_ms: 20.0,
            slow_queue_ms: 1_000.0,
            cache_systems: [
                "redis",
                "memcached",
                "valkey",
                "keydb",
                "dragonfly",
                "hazelcast",
            ]
            .map(String::from)
            .to_vec(),
            retry_budget: 0.2,
            guardrails: GuardrailSettings::default(),
            kubernetes: KubernetesSettings::default(),
            toxiproxy: ToxiproxySettings::default(),
            faultline_url: "http://127.0.0.1:8080".into(),
            llm: None,
        }
    }
}

/// When a running scenario must be aborted, relative to the entry service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailSettings {
    /// Abort once the entry's error rate exceeds its observed rate plus this.
    pub error_rate_margin: f64,
    /// Abort once the entry's p99 exceeds (observed p99 + the latency the
    /// fault adds) times this.
    pub p99_factor: f64,
}

impl Default for GuardrailSettings {
    fn default() -> Self {
        GuardrailSettings {
            error_rate_margin: 0.05,
            p99_factor: 2.0,
        }
    }
}

/// How graph nodes map to Kubernetes workloads in rendered manifests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesSettings {
    /// Pod label whose value is the service name (`service.name`).
    pub label_key: String,
    /// Use `k8s.deployment.name` as the label value where the spans carry
    /// it, instead of `service.name`.
    pub label_from_deployment: bool,
    /// Namespace of services whose spans carry no `k8s.namespace.name`.
    pub default_namespace: String,
    /// Namespace the chaos objects themselves are created in (unset: the
    /// target's namespace).
    pub chaos_namespace: Option<String>,
    /// The port services serve HTTP on (HTTPChaos, pod-http-latency).
    pub http_port: u16,
    /// The URL the Chaos Mesh StatusCheck and Litmus probe poll; unset:
    /// `http://<entry>.<namespace>.svc.cluster.local:<http_port><health_path>`.
    pub entry_url: Option<String>,
    /// Path of the entry service's health check, for the default URL.
    pub health_path: String,
    /// The service account LitmusChaos runs experiments under.
    pub litmus_service_account: String,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        KubernetesSettings {
            label_key: "app".into(),
            label_from_deployment: false,
            default_namespace: "default".into(),
            chaos_namespace: None,
            http_port: 80,
            entry_url: None,
            health_path: "/healthz".into(),
            litmus_service_account: "litmus-admin".into(),
        }
    }
}

/// Where rendered Toxiproxy proxies listen and what they forward to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToxiproxySettings {
    /// The Toxiproxy API that Chaos Toolkit experiments call.
    pub api_url: String,
    /// Host proxies listen on.
    pub listen_host: String,
    /// Proxies listen on consecutive ports from here, in name order.
    pub base_port: u16,
    /// `host:port` of a node's real address, by node name (or by messaging
    /// system for brokers); unset nodes use `<name>:<port>`, the port
    /// guessed from `db.system` (redis 6379, postgresql 5432, …) or
    /// `default_port`.
    pub upstreams: BTreeMap<String, String>,
    pub default_port: u16,
}

impl Default for ToxiproxySettings {
    fn default() -> Self {
        ToxiproxySettings {
            api_url: "http://127.0.0.1:8474".into(),
            listen_host: "127.0.0.1".into(),
            base_port: 21_000,
            upstreams: BTreeMap::new(),
            default_port: 80,
        }
    }
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {
    /// Base URL (`http://127.0.0.1:11434`, `…/v1`) or the full
    /// `…/v1/chat/completions` URL.
    pub url: String,
    pub model: String,
    /// Bearer token; unset reads `FAULTLINE_LLM_API_KEY`.
    pub api_key: Option<String>,
    /// The whole request, connect to last byte; past it, rules only.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Scenarios asked for.
    pub scenarios: usize,
    /// Rule points an accepted LLM scenario gets (a rule's are 10 × its
    /// weight × its fit), before the target's hotspot score is added.
    pub points: f64,
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            url: "http://127.0.0.1:11434".into(),
            model: String::new(),
            api_key: None,
            timeout: Duration::from_secs(30),
            scenarios: 5,
            points: 6.0,
        }
    }
}

impl LlmSettings {
    /// The key from the settings, else from `FAULTLINE_LLM_API_KEY`.
    pub fn key(&self) -> Option<String> {
        self.api_key
            .clone()
            .or_else(|| std::env::var("FAULTLINE_LLM_API_KEY").ok())
            .filter(|k| !k.is_empty())
    }

    /// The chat-completions URL from whichever form `url` was given in.
    pub fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_owned()
        } else if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_with_unknown_key_is_refused() {
        let ok: ScenarioSettings = serde_yaml_ng::from_str(
            "duration: 90s\nkubernetes: {label_key: app.kubernetes.io/name}",
        )
        .unwrap();
        assert_eq!(ok.duration, Duration::from_secs(90));
        assert_eq!(ok.kubernetes.label_key, "app.kubernetes.io/name");
        assert_eq!(ok.max_scenarios, 20);
        let err = serde_yaml_ng::from_str::<ScenarioSettings>("colour: red").unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn endpoint_accepts_base_or_full_url() {
        let mut s = LlmSettings::default();
        for (url, want) in [
            ("http://h:1", "http://h:1/v1/chat/completions"),
            ("http://h:1/v1/", "http://h:1/v1/chat/completions"),
            (
                "http://h:1/v1/chat/completions",
                "http://h:1/v1/chat/completions",
            ),
        ] {
            s.url = url.into();
            assert_eq!(s.endpoint(), want);
        }
    }
}
