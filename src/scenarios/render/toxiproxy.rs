//! Toxiproxy: the proxies to create (`POST /populate`) and, per scenario,
//! the toxic bodies (`POST /proxies/{proxy}/toxics`) or the proxy update
//! that takes a dependency down (`PATCH /proxies/{proxy}`,
//! `{"enabled": false}`).
//!
//! One proxy per faulted edge, named `<caller>_to_<dependency>`, so a fault
//! on one edge leaves the dependency's other callers alone. Proxies listen
//! on consecutive ports from `toxiproxy.base_port`, in name order; point
//! the caller at the listen address.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{json, RenderError, Rendered};
use crate::scenarios::model::{FaultKind, Scenario, Workload};
use crate::scenarios::settings::ScenarioSettings;

/// A proxy as `/populate` and `POST /proxies` take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proxy {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
}

/// A toxic as `POST /proxies/{proxy}/toxics` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Toxic {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub stream: String,
    pub toxicity: f32,
    pub attributes: BTreeMap<String, u64>,
}

/// What one scenario does to Toxiproxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub scenario: String,
    pub title: String,
    pub proxy: Proxy,
    /// Toxics to add; empty when the fault is the proxy being disabled.
    pub toxics: Vec<Toxic>,
    /// Body of `PATCH /proxies/{proxy}` that applies the fault, if any.
    pub proxy_update: Option<serde_json::Value>,
}

pub fn render(
    scenarios: &[Scenario],
    settings: &ScenarioSettings,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let ports = ports(scenarios, settings);
    let mut proxies: BTreeMap<String, Proxy> = BTreeMap::new();
    for s in scenarios {
        match plan(s, &ports, settings) {
            Ok(p) => {
                proxies.insert(p.proxy.name.clone(), p.proxy.clone());
                out.file(format!("toxiproxy/{}.json", s.id), json(&p)?);
            }
            Err(reason) => out.skip(s, reason),
        }
    }
    let list: Vec<&Proxy> = proxies.values().collect();
    out.files.insert(
        0,
        super::RenderedFile {
            path: "toxiproxy/populate.json".into(),
            content: json(&list)?,
        },
    );
    Ok(())
}

/// The proxy name of a scenario, if Toxiproxy can sit on its traffic.
pub fn proxy_name(s: &Scenario) -> Option<String> {
    let towards = s.inject.towards.as_ref()?;
    let clean = |n: &str| -> String {
        n.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    Some(format!(
        "{}_to_{}",
        clean(&s.inject.on.name),
        clean(&towards.name)
    ))
}

/// Listen ports by proxy name: consecutive, in name order, so they are
/// stable for a given scenario set and never collide.
pub fn ports(scenarios: &[Scenario], settings: &ScenarioSettings) -> BTreeMap<String, u16> {
    let mut names: Vec<String> = scenarios.iter().filter_map(proxy_name).collect();
    names.sort();
    names.dedup();
    let base = settings.toxiproxy.base_port;
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, base.saturating_add(i as u16)))
        .collect()
}

/// The scenario as a proxy plus toxics, or why Toxiproxy cannot do it.
pub fn plan(
    s: &Scenario,
    ports: &BTreeMap<String, u16>,
    settings: &ScenarioSettings,
) -> Result<Plan, String> {
    let (toxics, disable) = toxics(s)?;
    let (Some(name), Some(towards)) = (proxy_name(s), s.inject.towards.as_ref()) else {
        return Err(format!(
            "Toxiproxy sits on a connection; {} has none",
            s.fault.kind
        ));
    };
    let t = &settings.toxiproxy;
    let port = ports.get(&name).copied().unwrap_or(t.base_port);
    let proxy = Proxy {
        name: name.clone(),
        listen: format!("{}:{port}", t.listen_host),
        upstream: upstream(towards, settings),
        enabled: true,
    };
    Ok(Plan {
        scenario: s.id.clone(),
        title: s.title.clone(),
        proxy,
        toxics,
        proxy_update: disable.then(|| serde_json::json!({"enabled": false})),
    })
}

/// The toxics of a scenario, and whether it disables the proxy instead.
fn toxics(s: &Scenario) -> Result<(Vec<Toxic>, bool), String> {
    let p = &s.fault.params;
    let share = |pct: Option<u32>| pct.map_or(1.0, |v| v as f32 / 100.0);
    let toxic = |kind: &str, toxicity: f32, attrs: &[(&str, u64)]| Toxic {
        name: format!("faultline_{}", s.id),
        kind: kind.to_owned(),
        stream: "downstream".into(),
        toxicity,
        attributes: attrs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    };
    let latency = p.latency_ms.unwrap_or(0);
    let one = match s.fault.kind {
        FaultKind::Latency | FaultKind::SlowConsumer => {
            toxic("latency", 1.0, &[("latency", latency), ("jitter", 0)])
        }
        FaultKind::LatencyJitter => toxic(
            "latency",
            1.0,
            &[("latency", latency), ("jitter", p.jitter_ms.unwrap_or(0))],
        ),
        // Jitter as large as the delay reorders what travels over separate
        // connections; one TCP stream stays in order whatever happens.
        FaultKind::Reorder => toxic("latency", 1.0, &[("latency", latency), ("jitter", latency)]),
        FaultKind::Timeout => toxic("timeout", 1.0, &[("timeout", p.timeout_ms.unwrap_or(0))]),
        FaultKind::ResetPeer | FaultKind::RetryStorm => {
            toxic("reset_peer", share(p.error_percent), &[("timeout", 0)])
        }
        // Toxicity applies per connection: this share of connections is
        // black-holed (data dropped, connection left open).
        FaultKind::DropConnections => toxic("timeout", share(p.loss_percent), &[("timeout", 0)]),
        FaultKind::Bandwidth => toxic("bandwidth", 1.0, &[("rate", p.rate_kbps.unwrap_or(1))]),
        FaultKind::CacheDegradation if p.latency_ms.is_some() => {
            toxic("latency", 1.0, &[("latency", latency), ("jitter", 0)])
        }
        FaultKind::Down | FaultKind::CacheDegradation => return Ok((Vec::new(), true)),
        FaultKind::CpuPressure => return Err("Toxiproxy cannot load a CPU".into()),
    };
    Ok((vec![one], false))
}

/// `host:port` of the real dependency: from `toxiproxy.upstreams` (by node
/// name, then by system), else the node's name and its system's usual port.
fn upstream(w: &Workload, settings: &ScenarioSettings) -> String {
    let t = &settings.toxiproxy;
    if let Some(u) = t.upstreams.get(&w.name) {
        return u.clone();
    }
    if let Some(u) = w.system.as_ref().and_then(|s| t.upstreams.get(s)) {
        return u.clone();
    }
    let port = w
        .system
        .as_deref()
        .and_then(default_port)
        .unwrap_or(t.default_port);
    format!("{}:{port}", w.name)
}

/// The usual port of a database or broker, by `db.system` /
/// `messaging.system`.
fn default_port(system: &str) -> Option<u16> {
    Some(match system.to_ascii_lowercase().as_str() {
        "redis" | "valkey" | "keydb" | "dragonfly" => 6379,
        "memcached" => 11211,
        "hazelcast" => 5701,
        "postgresql" | "postgres" => 5432,
        "mysql" | "mariadb" => 3306,
        "mongodb" => 27017,
        "cassandra" => 9042,
        "elasticsearch" | "opensearch" => 9200,
        "mssql" => 1433,
        "clickhouse" => 9000,
        "kafka" => 9092,
        "rabbitmq" => 5672,
        "nats" => 4222,
        "pulsar" => 6650,
        _ => return None,
    })
}
