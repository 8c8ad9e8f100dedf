//! LitmusChaos: one ChaosEngine (`litmuschaos.io/v1alpha1`) per scenario,
//! using four faults: pod-network-latency, pod-network-loss,
//! pod-http-latency and pod-cpu-hog. Their ChaosExperiment CRs and service
//! account must already be installed.
//!
//! Network faults run in the caller's pods, limited to the dependency with
//! `DESTINATION_HOSTS`; request latency on an RPC edge runs in the callee
//! (pod-http-latency, a Toxiproxy inside the pod). Every engine carries an
//! HTTP probe on the entry service (Litmus 3 requires a probe), so a run
//! that breaks the entry stops and fails.

use serde_json::{json, Value};

use super::k8s::{self, http_callee};
use super::{yaml_docs, RenderError, Rendered};
use crate::scenarios::model::{FaultKind, Scenario, Workload};
use crate::scenarios::settings::{KubernetesSettings, ScenarioSettings};

const API_VERSION: &str = "litmuschaos.io/v1alpha1";

/// A Litmus fault: its name, the workload it runs in, and its env.
pub struct Experiment<'a> {
    pub name: &'static str,
    pub app: &'a Workload,
    pub env: Vec<(&'static str, String)>,
}

pub fn render(
    scenarios: &[Scenario],
    settings: &ScenarioSettings,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let k = &settings.kubernetes;
    for s in scenarios {
        match experiment(s, k) {
            Ok(e) => out.file(
                format!("litmus/{}.yaml", s.id),
                yaml_docs(&[engine(s, &e, k)])?,
            ),
            Err(reason) => out.skip(s, reason),
        }
    }
    Ok(())
}

/// The Litmus fault of a scenario, or why none of the four fits.
pub fn experiment<'a>(s: &'a Scenario, k: &KubernetesSettings) -> Result<Experiment<'a>, String> {
    let p = &s.fault.params;
    let on = &s.inject.on;
    let hosts = match (&s.inject.towards, s.fault.kind.on_destination()) {
        (Some(t), false) => k8s::host(t, k),
        _ => String::new(),
    };
    let net_latency = |latency: u64, jitter: u64| Experiment {
        name: "pod-network-latency",
        app: on,
        env: vec![
            ("NETWORK_LATENCY", latency.to_string()),
            ("JITTER", jitter.to_string()),
            ("DESTINATION_HOSTS", hosts.clone()),
        ],
    };
    let net_loss = |percent: u32| Experiment {
        name: "pod-network-loss",
        app: on,
        env: vec![
            ("NETWORK_PACKET_LOSS_PERCENTAGE", percent.to_string()),
            ("DESTINATION_HOSTS", hosts.clone()),
        ],
    };
    let latency = p.latency_ms.or(p.timeout_ms).unwrap_or(0);
    Ok(match s.fault.kind {
        FaultKind::Latency | FaultKind::Timeout => match http_callee(s) {
            Some(callee) => Experiment {
                name: "pod-http-latency",
                app: callee,
                env: vec![
                    ("LATENCY", latency.to_string()),
                    ("TARGET_SERVICE_PORT", k.http_port.to_string()),
                    ("TOXICITY", "100".into()),
                ],
            },
            None => net_latency(latency, 0),
        },
        FaultKind::LatencyJitter => net_latency(latency, p.jitter_ms.unwrap_or(0)),
        FaultKind::SlowConsumer => net_latency(latency, 0),
        // netem reorders packets when jitter exceeds their spacing.
        FaultKind::Reorder => net_latency(latency, latency),
        FaultKind::CacheDegradation if p.latency_ms.is_some() => net_latency(latency, 0),
        FaultKind::DropConnections => net_loss(p.loss_percent.unwrap_or(100)),
        FaultKind::RetryStorm => net_loss(p.error_percent.unwrap_or(100)),
        FaultKind::Down | FaultKind::CacheDegradation => net_loss(100),
        FaultKind::CpuPressure => Experiment {
            name: "pod-cpu-hog",
            app: on,
            env: vec![
                ("CPU_CORES", p.cpu_workers.unwrap_or(1).to_string()),
                ("CPU_LOAD", p.cpu_load_percent.unwrap_or(100).to_string()),
            ],
        },
        FaultKind::ResetPeer | FaultKind::Bandwidth => {
            return Err(format!(
                "{} is not among the LitmusChaos faults faultline renders \
                 (pod-network-latency, pod-network-loss, pod-http-latency, pod-cpu-hog)",
                s.fault.kind
            ))
        }
    })
}

fn engine(s: &Scenario, e: &Experiment<'_>, k: &KubernetesSettings) -> Value {
    let mut env = vec![json!({"name": "TOTAL_CHAOS_DURATION", "value": s.duration_s.to_string()})];
    env.extend(e.env.iter().map(|(n, v)| json!({"name": n, "value": v})));
    let probe = json!({
        "name": "entry-responds",
        "type": "httpProbe",
        "mode": "Continuous",
        "httpProbe/inputs": {
            "url": k8s::entry_url(s, k),
            "method": {"get": {"criteria": "==", "responseCode": "200"}},
        },
        "runProperties": {"probeTimeout": "5s", "interval": "5s", "retry": 1, "stopOnFailure": true},
    });
    json!({
        "apiVersion": API_VERSION,
        "kind": "ChaosEngine",
        "metadata": k8s::metadata(s, &k8s::object_namespace(e.app, k)),
        "spec": {
            "engineState": "active",
            "appinfo": {
                "appns": k8s::namespace(e.app, k),
                "applabel": format!("{}={}", k.label_key, k8s::label_value(e.app, k)),
                "appkind": "deployment",
            },
            "chaosServiceAccount": k.litmus_service_account,
            "jobCleanUpPolicy": "delete",
            "experiments": [{
                "name": e.name,
                "spec": {"components": {"env": env}, "probe": [probe]},
            }],
        },
    })
}
