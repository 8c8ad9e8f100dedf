//! Kubernetes naming and selectors shared by the Chaos Mesh and LitmusChaos
//! renderers.
//!
//! A service node maps to the pods labelled `<label_key>=<service.name>`
//! (or `=<k8s.deployment.name>` with `label_from_deployment`) in its
//! `k8s.namespace.name` (else `default_namespace`). A virtual node (a
//! database, cache, broker or outside peer) is not a pod: it is addressed
//! by host name, which is the name the callers' spans gave it.

use serde_json::{json, Value};

use crate::graph::partial::{EdgeKind, NodeKind};
use crate::operators::Target;
use crate::scenarios::model::{Scenario, Workload};
use crate::scenarios::settings::KubernetesSettings;

/// The object name: DNS-1123, at most 63 characters, unique per scenario.
pub fn name(s: &Scenario) -> String {
    format!("fl-{}-{}", s.fault.kind.as_str().replace('_', "-"), s.id)
}

pub fn is_pod(w: &Workload) -> bool {
    w.kind == NodeKind::Service
}

pub fn namespace(w: &Workload, k: &KubernetesSettings) -> String {
    w.k8s_namespace
        .clone()
        .unwrap_or_else(|| k.default_namespace.clone())
}

/// Where a chaos object lives: `chaos_namespace`, else its target's.
pub fn object_namespace(w: &Workload, k: &KubernetesSettings) -> String {
    k.chaos_namespace.clone().unwrap_or_else(|| namespace(w, k))
}

pub fn label_value(w: &Workload, k: &KubernetesSettings) -> String {
    match (&w.k8s_deployment, k.label_from_deployment) {
        (Some(d), true) => d.clone(),
        _ => w.name.clone(),
    }
}

/// A Chaos Mesh pod selector.
pub fn selector(w: &Workload, k: &KubernetesSettings) -> Value {
    json!({
        "namespaces": [namespace(w, k)],
        "labelSelectors": {k.label_key.clone(): label_value(w, k)},
    })
}

/// A host name for network filters: the cluster DNS name of a service,
/// the span-given name of anything else.
pub fn host(w: &Workload, k: &KubernetesSettings) -> String {
    if is_pod(w) {
        format!("{}.{}.svc.cluster.local", w.name, namespace(w, k))
    } else {
        w.name.clone()
    }
}

/// HTTP faults (HTTPChaos, pod-http-latency) fit request-level faults on
/// an RPC edge into a service: they act per request, where netem acts per
/// packet and multiplies on every round trip.
pub fn http_callee(s: &Scenario) -> Option<&Workload> {
    let rpc = matches!(
        s.target,
        Target::Edge {
            kind: EdgeKind::Rpc,
            ..
        }
    );
    s.inject.towards.as_ref().filter(|t| rpc && is_pod(t))
}

/// The URL the entry service is polled on while a scenario runs.
pub fn entry_url(s: &Scenario, k: &KubernetesSettings) -> String {
    if let Some(url) = &k.entry_url {
        return url.clone();
    }
    let entry = &s.guardrails.entry;
    format!("http://{}:{}{}", host(entry, k), k.http_port, k.health_path)
}

/// Labels and annotations that tie an object back to its scenario.
pub fn metadata(s: &Scenario, namespace: &str) -> Value {
    json!({
        "name": name(s),
        "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": "faultline"},
        "annotations": {
            "faultline/scenario-id": s.id,
            "faultline/target": s.target.key(),
            "faultline/title": s.title,
        },
    })
}
