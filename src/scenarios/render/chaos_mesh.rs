//! Chaos Mesh (`chaos-mesh.org/v1alpha1`): one NetworkChaos, HTTPChaos or
//! StressChaos per scenario, and a Workflow that runs them all in series,
//! with a pause to recover after each, under a continuous StatusCheck on
//! the entry service that aborts the workflow when it fails.
//!
//! Request-level faults on an RPC edge (latency, hang, reset, retry storm)
//! are HTTPChaos on the callee: exact per request, but felt by all its
//! callers. Everything else is NetworkChaos from the caller's pods towards
//! the dependency only (pods by selector, virtual nodes by host name).

use serde_json::{json, Map, Value};

use super::k8s::{self, http_callee};
use super::{yaml_docs, RenderError, Rendered};
use crate::scenarios::model::{FaultKind, Scenario};
use crate::scenarios::settings::{KubernetesSettings, ScenarioSettings};

const API_VERSION: &str = "chaos-mesh.org/v1alpha1";

/// One chaos object: its kind and spec (without `duration`).
pub struct Chaos {
    pub kind: &'static str,
    pub spec: Value,
}

impl Chaos {
    /// The key a Workflow template embeds this kind's spec under.
    fn template_key(&self) -> &'static str {
        match self.kind {
            "HTTPChaos" => "httpChaos",
            "StressChaos" => "stressChaos",
            _ => "networkChaos",
        }
    }
}

pub fn render(
    scenarios: &[Scenario],
    settings: &ScenarioSettings,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let k = &settings.kubernetes;
    let mut runnable = Vec::new();
    for s in scenarios {
        match chaos(s, k) {
            Ok(c) => {
                out.file(
                    format!("chaos-mesh/{}.yaml", s.id),
                    yaml_docs(&[standalone(s, &c, k)])?,
                );
                runnable.push((s, c));
            }
            Err(reason) => out.skip(s, reason),
        }
    }
    if !runnable.is_empty() {
        let wf = workflow(&runnable, settings);
        out.file("chaos-mesh/workflow.yaml".into(), yaml_docs(&[wf])?);
    }
    Ok(())
}

fn standalone(s: &Scenario, c: &Chaos, k: &KubernetesSettings) -> Value {
    let mut spec = c.spec.clone();
    spec["duration"] = json!(format!("{}s", s.duration_s));
    json!({
        "apiVersion": API_VERSION,
        "kind": c.kind,
        "metadata": k8s::metadata(s, &k8s::object_namespace(&s.inject.on, k)),
        "spec": spec,
    })
}

/// The chaos object of a scenario, or why Chaos Mesh cannot express it.
pub fn chaos(s: &Scenario, k: &KubernetesSettings) -> Result<Chaos, String> {
    let p = &s.fault.params;
    let ms = |v: Option<u64>| format!("{}ms", v.unwrap_or(0));
    let pct = |v: Option<u32>| v.unwrap_or(0).to_string();
    let http = http_callee(s);
    Ok(match s.fault.kind {
        FaultKind::Latency | FaultKind::Timeout if http.is_some() => {
            let delay = ms(p.latency_ms.or(p.timeout_ms));
            http_chaos(s, k, json!({"delay": delay}))?
        }
        FaultKind::Latency | FaultKind::Timeout | FaultKind::SlowConsumer => network(
            s,
            k,
            "delay",
            json!({"delay": {"latency": ms(p.latency_ms.or(p.timeout_ms))}}),
        ),
        FaultKind::LatencyJitter => network(
            s,
            k,
            "delay",
            json!({"delay": {"latency": ms(p.latency_ms), "jitter": ms(p.jitter_ms),
                             "correlation": pct(p.correlation_percent)}}),
        ),
        FaultKind::Reorder => network(
            s,
            k,
            "delay",
            json!({"delay": {"latency": ms(p.latency_ms), "correlation": "0",
                             "reorder": {"reorder": pct(p.reorder_percent),
                                         "correlation": pct(p.correlation_percent), "gap": 5}}}),
        ),
        FaultKind::ResetPeer | FaultKind::RetryStorm if http.is_some() => {
            let mut c = http_chaos(s, k, json!({"abort": true}))?;
            c.spec["mode"] = json!("fixed-percent");
            c.spec["value"] = json!(pct(p.error_percent));
            c
        }
        FaultKind::ResetPeer => {
            return Err(
                "Chaos Mesh resets connections only for HTTP (HTTPChaos abort); \
                        use the Toxiproxy rendering"
                    .into(),
            )
        }
        FaultKind::DropConnections | FaultKind::RetryStorm => network(
            s,
            k,
            "loss",
            json!({"loss": {"loss": pct(p.loss_percent.or(p.error_percent)),
                            "correlation": pct(p.correlation_percent)}}),
        ),
        FaultKind::Bandwidth => network(
            s,
            k,
            "bandwidth",
            json!({"bandwidth": {"rate": format!("{}kbps", p.rate_kbps.unwrap_or(1)),
                                 "limit": 20_971_520, "buffer": 10_000}}),
        ),
        FaultKind::CacheDegradation if p.latency_ms.is_some() => network(
            s,
            k,
            "delay",
            json!({"delay": {"latency": ms(p.latency_ms)}}),
        ),
        FaultKind::Down | FaultKind::CacheDegradation => network(s, k, "partition", json!({})),
        FaultKind::CpuPressure => Chaos {
            kind: "StressChaos",
            spec: json!({
                "mode": "all",
                "selector": k8s::selector(&s.inject.on, k),
                "stressors": {"cpu": {"workers": p.cpu_workers.unwrap_or(1),
                                      "load": p.cpu_load_percent.unwrap_or(100)}},
            }),
        },
    })
}

/// A NetworkChaos on `on`'s pods, limited to traffic towards the
/// dependency; destination faults (slow consumer, reorder) take all of the
/// workload's traffic, since the broker's address is not in the traces.
fn network(s: &Scenario, k: &KubernetesSettings, action: &str, extra: Value) -> Chaos {
    let mut spec = Map::new();
    spec.insert("action".into(), json!(action));
    spec.insert("mode".into(), json!("all"));
    spec.insert("selector".into(), k8s::selector(&s.inject.on, k));
    let towards = s
        .inject
        .towards
        .as_ref()
        .filter(|_| !s.fault.kind.on_destination());
    if let Some(t) = towards {
        spec.insert("direction".into(), json!("to"));
        if k8s::is_pod(t) {
            spec.insert(
                "target".into(),
                json!({"mode": "all", "selector": k8s::selector(t, k)}),
            );
        } else {
            spec.insert("externalTargets".into(), json!([k8s::host(t, k)]));
        }
    }
    if let Value::Object(extra) = extra {
        spec.extend(extra);
    }
    Chaos {
        kind: "NetworkChaos",
        spec: Value::Object(spec),
    }
}

/// An HTTPChaos on the callee's requests, on every path of its HTTP port.
fn http_chaos(s: &Scenario, k: &KubernetesSettings, action: Value) -> Result<Chaos, String> {
    let callee = http_callee(s).ok_or("HTTPChaos needs a service as callee")?;
    let mut spec = json!({
        "mode": "all",
        "selector": k8s::selector(callee, k),
        "target": "Request",
        "port": k.http_port,
        "path": "*",
    });
    if let (Value::Object(spec), Value::Object(action)) = (&mut spec, action) {
        spec.extend(action);
    }
    Ok(Chaos {
        kind: "HTTPChaos",
        spec,
    })
}

/// The Workflow: StatusCheck in parallel with the scenarios in series,
/// each followed by a pause of `recover_within` (time to recover).
fn workflow(runnable: &[(&Scenario, Chaos)], settings: &ScenarioSettings) -> Value {
    let k = &settings.kubernetes;
    let recover = settings.recover_within.as_secs();
    let total: u64 = runnable.iter().map(|(s, _)| s.duration_s + recover).sum();
    let mut templates = Vec::new();
    let mut serial = Vec::new();
    for (i, (s, c)) in runnable.iter().enumerate() {
        let name = k8s::name(s);
        serial.push(json!(name));
        templates.push(json!({
            "name": name,
            "templateType": c.kind,
            "deadline": format!("{}s", s.duration_s),
            c.template_key(): c.spec,
        }));
        let pause = format!("recover-{}", i + 1);
        serial.push(json!(pause));
        templates.push(
            json!({"name": pause, "templateType": "Suspend", "deadline": format!("{recover}s")}),
        );
    }
    let first = runnable[0].0;
    let head = [
        json!({"name": "entry", "templateType": "Parallel", "deadline": format!("{total}s"),
               "children": ["guard", "scenarios"]}),
        json!({"name": "guard", "templateType": "StatusCheck", "deadline": format!("{total}s"),
               "abortWithStatusCheck": true,
               "statusCheck": {"mode": "Continuous", "type": "HTTP", "intervalSeconds": 10,
                               "timeoutSeconds": 2, "failureThreshold": 3,
                               "http": {"url": k8s::entry_url(first, k), "method": "GET",
                                        "criteria": {"statusCode": "200"}}}}),
        json!({"name": "scenarios", "templateType": "Serial", "deadline": format!("{total}s"),
               "children": serial}),
    ];
    let namespace = k8s::object_namespace(&first.guardrails.entry, k);
    json!({
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": "faultline-scenarios", "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "faultline"}},
        "spec": {"entry": "entry", "templates": head.into_iter().chain(templates).collect::<Vec<_>>()},
    })
}
