//! Chaos Toolkit: one experiment JSON per scenario.
//!
//! The steady-state hypothesis asks faultline itself: `GET
//! /api/signals?target=<key>` must answer 200, and each signal the
//! scenario watches on its target must be `within_tolerance` in the latest
//! window (a `jsonpath` tolerance on the response body). The method applies
//! the fault through the Toxiproxy HTTP API (create the proxy, add the
//! toxic or disable the proxy, hold for the duration); the rollbacks remove
//! it. `faultline_url` and `toxiproxy_url` are configuration, so
//! `chaos run --var` can point them elsewhere; run with
//! `--hypothesis-strategy continuously --fail-fast` to have the hypothesis
//! act as a guardrail during the method too.

use serde_json::{json, Value};

use super::toxiproxy::{self, Plan};
use super::{json as pretty, RenderError, Rendered};
use crate::scenarios::model::Scenario;
use crate::scenarios::settings::ScenarioSettings;

/// Signals `/api/signals` reports (the others are measured by a runner).
const API_SIGNALS: [&str; 8] = [
    "error_rate",
    "timeout_rate",
    "p99_ms",
    "retries",
    "retry_amplification",
    "queue_depth",
    "queue_lag_ms",
    "out_of_order",
];

pub fn render(
    scenarios: &[Scenario],
    settings: &ScenarioSettings,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let ports = toxiproxy::ports(scenarios, settings);
    for s in scenarios {
        match toxiproxy::plan(s, &ports, settings) {
            Ok(plan) => out.file(
                format!("chaostoolkit/{}.json", s.id),
                pretty(&experiment(s, &plan, settings))?,
            ),
            Err(reason) => out.skip(s, format!("the method runs through Toxiproxy: {reason}")),
        }
    }
    Ok(())
}

/// `:`, `>` and the like percent-encoded, for a target key in a query.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn experiment(s: &Scenario, plan: &Plan, settings: &ScenarioSettings) -> Value {
    json!({
        "version": "1.0.0",
        "title": s.title,
        "description": s.hypothesis.text,
        "tags": ["faultline", s.fault.kind.as_str(), format!("scenario:{}", s.id)],
        "configuration": {
            "faultline_url": settings.faultline_url,
            "toxiproxy_url": settings.toxiproxy.api_url,
        },
        "extensions": [{"name": "faultline", "scenario": s.id, "target": s.target.key(),
                        "guardrails": s.guardrails}],
        "steady-state-hypothesis": {
            "title": format!("{} stays within tolerance", s.target.key()),
            "probes": probes(s),
        },
        "method": method(s, plan),
        "rollbacks": rollbacks(plan),
    })
}

fn probes(s: &Scenario) -> Vec<Value> {
    let key = s.target.key();
    let provider = json!({
        "type": "http",
        "url": format!("${{faultline_url}}/api/signals?target={}", encode(&key)),
        "method": "GET",
        "timeout": 5,
    });
    let mut probes = vec![json!({
        "type": "probe",
        "name": "faultline-answers",
        "tolerance": 200,
        "provider": provider,
    })];
    let mut seen = Vec::new();
    for w in s.signals.iter().filter(|w| w.key == key) {
        if !API_SIGNALS.contains(&w.signal.as_str()) || seen.contains(&w.signal) {
            continue;
        }
        seen.push(w.signal.clone());
        probes.push(json!({
            "type": "probe",
            "name": format!("{}-within-tolerance", w.signal.replace('_', "-")),
            "tolerance": {
                "type": "jsonpath",
                "path": format!("$.records[0].signals.{}.within_tolerance", w.signal),
                "expect": true,
                "target": "body",
            },
            "provider": provider,
        }));
    }
    probes
}

fn http_action(name: &str, method: &str, url: String, body: Option<Value>) -> Value {
    let mut provider = json!({"type": "http", "method": method, "url": url, "timeout": 10});
    if let Some(body) = body {
        provider["headers"] = json!({"Content-Type": "application/json"});
        provider["arguments"] = body;
    }
    json!({"type": "action", "name": name, "provider": provider})
}

fn method(s: &Scenario, plan: &Plan) -> Vec<Value> {
    let proxy = &plan.proxy.name;
    let create = http_action(
        "create-proxy",
        "POST",
        "${toxiproxy_url}/proxies".into(),
        Some(json!(plan.proxy)),
    );
    let mut inject = match (&plan.proxy_update, plan.toxics.first()) {
        (Some(update), _) => http_action(
            "disable-proxy",
            "PATCH",
            format!("${{toxiproxy_url}}/proxies/{proxy}"),
            Some(update.clone()),
        ),
        (None, Some(toxic)) => http_action(
            &format!("add-{}", s.fault.kind.as_str().replace('_', "-")),
            "POST",
            format!("${{toxiproxy_url}}/proxies/{proxy}/toxics"),
            Some(json!(toxic)),
        ),
        (None, None) => return vec![create],
    };
    inject["pauses"] = json!({"after": s.duration_s});
    vec![create, inject]
}

fn rollbacks(plan: &Plan) -> Vec<Value> {
    let proxy = &plan.proxy.name;
    let mut list: Vec<Value> = plan
        .toxics
        .iter()
        .map(|t| {
            http_action(
                "remove-toxic",
                "DELETE",
                format!("${{toxiproxy_url}}/proxies/{proxy}/toxics/{}", t.name),
                None,
            )
        })
        .collect();
    if plan.proxy_update.is_some() {
        list.push(http_action(
            "enable-proxy",
            "PATCH",
            format!("${{toxiproxy_url}}/proxies/{proxy}"),
            Some(json!({"enabled": true})),
        ));
    }
    list
}
