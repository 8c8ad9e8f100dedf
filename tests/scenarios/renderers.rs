//! Every renderer's output: Chaos Mesh and LitmusChaos manifests against
//! their CRD schemas, the Workflow's shape, selectors, the Toxiproxy API
//! contract and the Chaos Toolkit experiments.

use std::collections::BTreeSet;

use faultline::scenarios::render::{self, Format};
use faultline::scenarios::{FaultKind, Scenario, ScenarioSettings};
use serde_json::{json, Value};

use super::{all_scenarios, crd, scenarios_with};

/// Every YAML document of the rendered files, with the file it came from.
fn documents(
    format: Format,
    list: &[Scenario],
    settings: &ScenarioSettings,
) -> Vec<(String, Value)> {
    let rendered = render::render(format, list, settings).unwrap();
    let covered = rendered.skipped.len()
        + rendered
            .files
            .iter()
            .filter(|f| !f.path.ends_with("workflow.yaml"))
            .count();
    assert_eq!(
        covered,
        list.len(),
        "each scenario is rendered or skipped with a reason"
    );
    assert!(rendered.skipped.iter().all(|s| !s.reason.is_empty()));
    let mut docs = Vec::new();
    for f in &rendered.files {
        for part in f.content.split("\n---\n") {
            docs.push((f.path.clone(), serde_yaml_ng::from_str(part).unwrap()));
        }
    }
    docs
}

#[test]
fn chaos_mesh_and_litmus_manifests_validate_against_the_crds() {
    let list = all_scenarios();
    let settings = ScenarioSettings::default();
    let crds = [
        crd::load("chaos-mesh/networkchaos.yaml"),
        crd::load("chaos-mesh/httpchaos.yaml"),
        crd::load("chaos-mesh/stresschaos.yaml"),
        crd::load("chaos-mesh/workflows.yaml"),
        crd::load("litmus/chaosengine.yaml"),
    ];
    let mut kinds = BTreeSet::new();
    let mut docs = documents(Format::ChaosMesh, &list, &settings);
    docs.extend(documents(Format::Litmus, &list, &settings));
    for (path, doc) in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let crd = crds
            .iter()
            .find(|c| c.kind == kind)
            .unwrap_or_else(|| panic!("{path}: no CRD for kind {kind:?}"));
        let errors = crd.validate(doc);
        assert!(errors.is_empty(), "{path}:\n{}", errors.join("\n"));
        kinds.insert(kind.to_owned());
    }
    let want = [
        "ChaosEngine",
        "HTTPChaos",
        "NetworkChaos",
        "StressChaos",
        "Workflow",
    ];
    assert_eq!(kinds, want.map(String::from).into_iter().collect());
    let actions: BTreeSet<&str> = docs
        .iter()
        .filter_map(|(_, d)| d["spec"]["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["bandwidth", "delay", "loss", "partition"]
            .into_iter()
            .collect()
    );
    let experiments: BTreeSet<&str> = docs
        .iter()
        .filter_map(|(_, d)| d["spec"]["experiments"][0]["name"].as_str())
        .collect();
    let want = [
        "pod-cpu-hog",
        "pod-http-latency",
        "pod-network-latency",
        "pod-network-loss",
    ];
    assert_eq!(experiments, want.into_iter().collect());
}

#[test]
fn workflow_runs_the_set_in_series_under_a_status_check() {
    let list = scenarios_with(&ScenarioSettings::default());
    let docs = documents(Format::ChaosMesh, &list, &ScenarioSettings::default());
    let (_, wf) = docs
        .iter()
        .find(|(p, _)| p == "chaos-mesh/workflow.yaml")
        .unwrap();
    let templates = wf["spec"]["templates"].as_array().unwrap();
    let by_name = |n: &str| templates.iter().find(|t| t["name"] == n).unwrap();
    assert_eq!(by_name("entry")["children"], json!(["guard", "scenarios"]));
    let guard = by_name("guard");
    assert_eq!(guard["templateType"], "StatusCheck");
    assert_eq!(guard["abortWithStatusCheck"], true);
    assert_eq!(
        guard["statusCheck"]["http"]["url"],
        "http://frontend.shop.svc.cluster.local:80/healthz"
    );
    let serial = by_name("scenarios");
    assert_eq!(serial["templateType"], "Serial");
    let children = serial["children"].as_array().unwrap();
    let runs = children
        .iter()
        .filter(|c| !c.as_str().unwrap().starts_with("recover-"))
        .count();
    assert_eq!(runs + 1, docs.len(), "every rendered scenario runs once");
    // The selector comes from the resource attributes.
    let storm = docs
        .iter()
        .find(|(_, d)| d["kind"] == "HTTPChaos" && d["spec"]["abort"] == true)
        .unwrap();
    assert_eq!(
        storm.1["spec"]["selector"],
        json!({"namespaces": ["shop"], "labelSelectors": {"app": "payments"}})
    );
}

#[test]
fn selectors_follow_the_configured_label() {
    let list = scenarios_with(&ScenarioSettings::default());
    let mut settings = ScenarioSettings::default();
    settings.kubernetes.label_key = "app.kubernetes.io/name".into();
    settings.kubernetes.label_from_deployment = true;
    let docs = documents(Format::Litmus, &list, &settings);
    let labels: BTreeSet<&str> = docs
        .iter()
        .map(|(_, d)| d["spec"]["appinfo"]["applabel"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains("app.kubernetes.io/name=checkout-v1"),
        "{labels:?}"
    );
    assert!(docs
        .iter()
        .all(|(_, d)| d["spec"]["appinfo"]["appns"] == "shop"));
}

#[test]
fn the_crd_validator_catches_broken_manifests() {
    let network = crd::load("chaos-mesh/networkchaos.yaml");
    let bad = json!({
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": {"name": "x"},
        "spec": {"action": "explode", "mode": "all", "delay": {"latency": "fast"}, "colour": "red"},
    });
    let errors = network.validate(&bad).join("\n");
    for want in [
        "explode",
        "missing required field selector",
        "\"fast\" does not match",
        "colour: unknown field",
    ] {
        assert!(errors.contains(want), "{want} not in:\n{errors}");
    }
    let engine = crd::load("litmus/chaosengine.yaml");
    let bad = json!({
        "apiVersion": "litmuschaos.io/v1alpha1",
        "kind": "ChaosEngine",
        "metadata": {"name": "x"},
        "spec": {"engineState": "running", "experiments": [{"name": "pod-cpu-hog",
                 "spec": {"probe": [{"name": "p", "type": "httpProbe", "mode": "Always"}]}}]},
    });
    let errors = engine.validate(&bad).join("\n");
    for want in [
        "\"running\" does not match",
        "missing required field runProperties",
        "\"Always\" does not match",
    ] {
        assert!(errors.contains(want), "{want} not in:\n{errors}");
    }
}

/// The Toxiproxy API contract (docs: chaos-formats.md §1): field names,
/// types, toxic types and their attributes.
fn check_toxic(t: &Value) -> Result<(), String> {
    let known = ["name", "type", "stream", "toxicity", "attributes"];
    let obj = t.as_object().ok_or("a toxic is an object")?;
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown toxic field {k}"));
    }
    let attrs: &[&str] = match t["type"].as_str().ok_or("type is a string")? {
        "latency" => &["latency", "jitter"],
        "bandwidth" => &["rate"],
        "slow_close" => &["delay"],
        "timeout" | "reset_peer" => &["timeout"],
        "slicer" => &["average_size", "size_variation", "delay"],
        "limit_data" => &["bytes"],
        other => return Err(format!("unknown toxic type {other}")),
    };
    let given = t["attributes"]
        .as_object()
        .ok_or("attributes is an object")?;
    for (k, v) in given {
        if !attrs.contains(&k.as_str()) || !v.is_u64() {
            return Err(format!(
                "attribute {k}={v} is not a non-negative integer of this type"
            ));
        }
    }
    let toxicity = t["toxicity"].as_f64().ok_or("toxicity is a number")?;
    if !(0.0..=1.0).contains(&toxicity) || !t["name"].is_string() {
        return Err("toxicity in 0..1 and a name".into());
    }
    match t["stream"].as_str() {
        Some("upstream" | "downstream") => Ok(()),
        s => Err(format!("stream {s:?}")),
    }
}

fn check_proxy(p: &Value) -> Result<(), String> {
    let obj = p.as_object().ok_or("a proxy is an object")?;
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    if keys != BTreeSet::from(["name", "listen", "upstream", "enabled"]) {
        return Err(format!("proxy fields {keys:?}"));
    }
    let addr = |k: &str| {
        p[k].as_str()
            .and_then(|a| a.rsplit_once(':'))
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok())
    };
    if !(addr("listen") && addr("upstream") && p["name"].is_string() && p["enabled"].is_boolean()) {
        return Err(format!("bad proxy {p}"));
    }
    Ok(())
}

#[test]
fn toxiproxy_bodies_follow_the_api_contract() {
    let list = all_scenarios();
    let rendered = render::render(Format::Toxiproxy, &list, &ScenarioSettings::default()).unwrap();
    let populate: Value = serde_json::from_str(&rendered.files[0].content).unwrap();
    assert_eq!(rendered.files[0].path, "toxiproxy/populate.json");
    let proxies = populate.as_array().expect("/populate takes an array");
    for p in proxies {
        check_proxy(p).unwrap();
    }
    let listens: BTreeSet<&str> = proxies
        .iter()
        .map(|p| p["listen"].as_str().unwrap())
        .collect();
    assert_eq!(listens.len(), proxies.len(), "no two proxies share a port");
    let mut types = BTreeSet::new();
    for f in &rendered.files[1..] {
        let plan: Value = serde_json::from_str(&f.content).unwrap();
        check_proxy(&plan["proxy"]).unwrap();
        assert!(
            proxies.contains(&plan["proxy"]),
            "{} is in populate.json",
            plan["proxy"]
        );
        for t in plan["toxics"].as_array().unwrap() {
            check_toxic(t).unwrap_or_else(|e| panic!("{}: {e}", f.path));
            types.insert(t["type"].as_str().unwrap().to_owned());
        }
        if plan["toxics"].as_array().unwrap().is_empty() {
            assert_eq!(
                plan["proxy_update"],
                json!({"enabled": false}),
                "{}",
                f.path
            );
        }
    }
    assert_eq!(
        types,
        ["bandwidth", "latency", "reset_peer", "timeout"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let redis = proxies
        .iter()
        .find(|p| p["name"] == "checkout_to_redis-cart")
        .unwrap();
    assert_eq!(redis["upstream"], "redis-cart:6379");
    let skipped: Vec<_> = rendered.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(skipped.iter().all(|r| r.contains("CPU")), "{skipped:?}");
}

#[test]
fn chaostoolkit_experiments_probe_faultline_signals() {
    let list = scenarios_with(&ScenarioSettings::default());
    let rendered =
        render::render(Format::ChaosToolkit, &list, &ScenarioSettings::default()).unwrap();
    assert!(!rendered.files.is_empty());
    for f in &rendered.files {
        let x: Value = serde_json::from_str(&f.content).unwrap();
        for key in [
            "title",
            "description",
            "method",
            "rollbacks",
            "steady-state-hypothesis",
        ] {
            assert!(x.get(key).is_some(), "{}: no {key}", f.path);
        }
        let probes = x["steady-state-hypothesis"]["probes"].as_array().unwrap();
        assert_eq!(probes[0]["tolerance"], 200);
        assert!(probes.len() >= 2, "{}: a signal probe", f.path);
        for p in probes {
            let url = p["provider"]["url"].as_str().unwrap();
            assert!(
                url.starts_with("${faultline_url}/api/signals?target="),
                "{url}"
            );
            assert!(!url.contains('>'), "the key is percent-encoded: {url}");
        }
        assert_eq!(probes[1]["tolerance"]["type"], "jsonpath");
        assert_eq!(probes[1]["tolerance"]["expect"], true);
        assert!(probes[1]["tolerance"]["path"]
            .as_str()
            .unwrap()
            .starts_with("$.records[0].signals."));
        let id = x["extensions"][0]["scenario"].as_str().unwrap();
        let scenario = list.iter().find(|s| s.id == id).unwrap();
        let method = x["method"].as_array().unwrap();
        assert_eq!(
            method.last().unwrap()["pauses"]["after"],
            scenario.duration_s
        );
        assert!(
            !x["rollbacks"].as_array().unwrap().is_empty(),
            "{}: a rollback",
            f.path
        );
    }
    let storm = list
        .iter()
        .find(|s| s.fault.kind == FaultKind::RetryStorm)
        .unwrap();
    let f = rendered
        .files
        .iter()
        .find(|f| f.path.contains(&storm.id))
        .unwrap();
    let x: Value = serde_json::from_str(&f.content).unwrap();
    let url = x["steady-state-hypothesis"]["probes"][0]["provider"]["url"]
        .as_str()
        .unwrap();
    assert!(url.ends_with("target=edge%3Acheckout-%3Epayments"), "{url}");
    assert_eq!(
        x["method"][1]["provider"]["arguments"]["type"],
        "reset_peer"
    );
}
