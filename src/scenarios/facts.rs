//! [`Facts`]: the graph document, the hotspots and the active anomalies,
//! indexed for the rules, the LLM validation and the builder; and where a
//! fault on a target is injected.

use std::collections::{BTreeMap, BTreeSet};

use super::graph::{DestinationDoc, EdgeDoc, GraphDoc, NodeDoc, PathDoc};
use super::model::{FaultKind, Injection, Workload};
use super::settings::ScenarioSettings;
use crate::graph::partial::{EdgeKind, NodeKind};
use crate::operators::records::AnomalyState;
use crate::operators::{AnomalyEvent, Hotspot, Target};

/// The graph, hotspots and anomalies, indexed for the rules.
pub struct Facts<'a> {
    pub doc: &'a GraphDoc,
    pub settings: &'a ScenarioSettings,
    nodes: BTreeMap<&'a str, &'a NodeDoc>,
    /// The first edge of each (source, target), as [`Facts::edge`] answers:
    /// rules ask for edges per candidate, and a scan of every edge each
    /// time was quadratic on graphs of 10^5 edges.
    edges: BTreeMap<(&'a str, &'a str), &'a EdgeDoc>,
    /// [`Facts::entry`] without a path, found once: it reads every node
    /// and edge, and was asked once per candidate.
    entry: Option<&'a NodeDoc>,
    hotspots: BTreeMap<&'a str, &'a Hotspot>,
    anomalies: BTreeMap<String, BTreeSet<String>>,
}

impl<'a> Facts<'a> {
    pub fn new(
        doc: &'a GraphDoc,
        hotspots: &'a [Hotspot],
        anomalies: &[AnomalyEvent],
        settings: &'a ScenarioSettings,
    ) -> Facts<'a> {
        let nodes: BTreeMap<&str, &NodeDoc> =
            doc.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        Facts {
            doc,
            settings,
            entry: busiest_entry(doc, &nodes),
            nodes,
            edges: first_edges(doc),
            hotspots: hotspots.iter().map(|h| (h.key.as_str(), h)).collect(),
            anomalies: active(anomalies, hotspots),
        }
    }

    pub fn node(&self, id: &str) -> Option<&'a NodeDoc> {
        self.nodes.get(id).copied()
    }

    pub fn is_service(&self, id: &str) -> bool {
        self.node(id).is_some_and(|n| n.kind == NodeKind::Service)
    }

    pub fn edge(&self, source: &str, target: &str) -> Option<&'a EdgeDoc> {
        self.edges.get(&(source, target)).copied()
    }

    /// A database-kind node whose `db.system` is a cache.
    pub fn is_cache(&self, id: &str) -> bool {
        self.node(id).is_some_and(|n| {
            n.kind == NodeKind::Database
                && n.system.as_deref().is_some_and(|s| {
                    let s = s.to_ascii_lowercase();
                    self.settings.cache_systems.contains(&s)
                })
        })
    }

    /// Database and cache edges leaving `service`.
    pub fn stores_of(&self, service: &str) -> Vec<&'a EdgeDoc> {
        self.doc
            .edges
            .iter()
            .filter(|e| e.source == service && e.kind == EdgeKind::Database)
            .collect()
    }

    pub fn hotspot(&self, key: &str) -> Option<&'a Hotspot> {
        self.hotspots.get(key).copied()
    }

    pub fn hotspots(&self) -> Vec<&'a Hotspot> {
        self.hotspots.values().copied().collect()
    }

    /// Active anomaly ids on any of `keys`, sorted.
    pub fn anomaly_ids(&self, keys: &[String]) -> Vec<String> {
        let ids: BTreeSet<&String> = keys
            .iter()
            .filter_map(|k| self.anomalies.get(k))
            .flatten()
            .collect();
        ids.into_iter().cloned().collect()
    }

    /// The busiest path crossing the target (paths come busiest first).
    pub fn impacted_path(&self, target: &Target) -> Option<&'a PathDoc> {
        match target {
            Target::Edge { source, target, .. } => {
                self.doc.paths.iter().find(|p| p.crosses(source, target))
            }
            Target::Destination { name } => {
                let edges = self.messaging_edges(name);
                self.doc
                    .paths
                    .iter()
                    .find(|p| edges.iter().any(|e| p.crosses(&e.source, &e.target)))
            }
            Target::Path { nodes } => self.doc.paths.iter().find(|p| &p.nodes == nodes),
            Target::Cluster { .. } => None,
        }
    }

    /// Where requests enter: the root of `path`, else the busiest service
    /// called from outside, else the busiest service.
    pub fn entry(&self, path: Option<&PathDoc>) -> Option<&'a NodeDoc> {
        path.and_then(|p| p.nodes.first())
            .and_then(|n| self.node(n))
            .or(self.entry)
    }

    /// Messaging edges carrying `destination`'s messages: producers' edges
    /// to its virtual node (messages nobody consumed yet) and the
    /// producer→consumer edges assigned to it. The graph view does not name
    /// the destination on an edge, so with several destinations an edge
    /// goes to the one whose mean lag is closest to its own queue time.
    pub fn messaging_edges(&self, destination: &str) -> Vec<&'a EdgeDoc> {
        self.doc
            .edges
            .iter()
            .filter(|e| e.kind == EdgeKind::Messaging)
            .filter(|e| {
                if e.target == destination {
                    return true;
                }
                self.is_service(&e.target)
                    && self
                        .destination_of(e)
                        .is_some_and(|d| d.name == destination)
            })
            .collect()
    }

    fn destination_of(&self, edge: &EdgeDoc) -> Option<&'a DestinationDoc> {
        let queue = edge.queue_latency_ms.map_or(0.0, |l| l.mean);
        let distance = |d: &DestinationDoc| ((1.0 + d.lag_mean()) / (1.0 + queue)).ln().abs();
        self.doc
            .destinations
            .iter()
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
    }

    /// Services consuming `destination`, busiest first.
    pub fn consumers(&self, destination: &str) -> Vec<&'a EdgeDoc> {
        let mut edges: Vec<_> = self
            .messaging_edges(destination)
            .into_iter()
            .filter(|e| self.is_service(&e.target))
            .collect();
        edges.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.target.cmp(&b.target)));
        edges
    }

    /// Services producing to `destination`, busiest first.
    pub fn producers(&self, destination: &str) -> Vec<String> {
        let mut calls: BTreeMap<&str, u64> = BTreeMap::new();
        for e in self.messaging_edges(destination) {
            *calls.entry(&e.source).or_default() += e.calls;
        }
        let mut list: Vec<_> = calls.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        list.into_iter().map(|(n, _)| n.to_owned()).collect()
    }

    pub fn workload(&self, name: &str) -> Workload {
        match self.node(name) {
            Some(n) => Workload {
                name: n.id.clone(),
                kind: n.kind,
                system: n.system.clone(),
                k8s_namespace: n.k8s_namespace.clone(),
                k8s_deployment: n.k8s_deployment.clone(),
            },
            None => Workload {
                name: name.to_owned(),
                kind: NodeKind::External,
                system: None,
                k8s_namespace: None,
                k8s_deployment: None,
            },
        }
    }

    /// The broker of a destination: its messaging system, as a node.
    fn broker(&self, destination: &str) -> Workload {
        let system = self
            .doc
            .destinations
            .iter()
            .find(|d| d.name == destination)
            .and_then(|d| d.system.clone());
        Workload {
            name: system.clone().unwrap_or_else(|| destination.to_owned()),
            kind: NodeKind::Messaging,
            system,
            k8s_namespace: None,
            k8s_deployment: None,
        }
    }

    /// Where a fault of `kind` on `target` is applied, or why it cannot be.
    pub fn injection(&self, target: &Target, kind: FaultKind) -> Result<Injection, String> {
        match target {
            Target::Edge { source, target, .. } => self.edge_injection(source, target, kind),
            Target::Destination { name } => self.destination_injection(name, kind),
            Target::Path { .. } | Target::Cluster { .. } => Err(format!(
                "{} is not injectable: name one of its edges",
                target.key()
            )),
        }
    }

    fn edge_injection(
        &self,
        source: &str,
        target: &str,
        kind: FaultKind,
    ) -> Result<Injection, String> {
        for n in [source, target] {
            if self.node(n).is_none() {
                return Err(format!("unknown service {n:?}"));
            }
        }
        if self.edge(source, target).is_none() {
            return Err(format!("unknown edge {source}->{target}"));
        }
        if kind.on_destination() {
            return Err(format!("{kind} applies to a destination, not an edge"));
        }
        let needs_service = matches!(kind, FaultKind::RetryStorm | FaultKind::CpuPressure);
        if needs_service && !self.is_service(target) {
            return Err(format!("{kind} needs a service; {target} is not one"));
        }
        if kind == FaultKind::CacheDegradation && !self.is_cache(target) {
            return Err(format!("{target} is not a cache"));
        }
        if kind == FaultKind::CpuPressure {
            return Ok(Injection {
                on: self.workload(target),
                towards: None,
            });
        }
        if !self.is_service(source) {
            return Err(format!(
                "{source} sends no spans, so nothing runs there to inject into"
            ));
        }
        Ok(Injection {
            on: self.workload(source),
            towards: Some(self.workload(target)),
        })
    }

    fn destination_injection(&self, name: &str, kind: FaultKind) -> Result<Injection, String> {
        if !self.doc.destinations.iter().any(|d| d.name == name) {
            return Err(format!("unknown destination {name:?}"));
        }
        let on = match kind {
            FaultKind::SlowConsumer => self.consumers(name).first().map(|e| e.target.clone()),
            FaultKind::Reorder => self.producers(name).into_iter().next(),
            _ => return Err(format!("{kind} applies to an edge, not a destination")),
        };
        let on = on.ok_or_else(|| format!("no {kind} side of {name} was seen in traces"))?;
        Ok(Injection {
            on: self.workload(&on),
            towards: Some(self.broker(name)),
        })
    }
}

/// Anomaly ids open now, by target key: started and not ended in
/// `events`, plus those each hotspot lists as active.
fn active(events: &[AnomalyEvent], hotspots: &[Hotspot]) -> BTreeMap<String, BTreeSet<String>> {
    let mut open: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in events {
        let ids = open.entry(e.key.clone()).or_default();
        match e.state {
            AnomalyState::Start => ids.insert(e.id.clone()),
            AnomalyState::End => ids.remove(&e.id),
        };
    }
    for h in hotspots {
        open.entry(h.key.clone())
            .or_default()
            .extend(h.anomalies.iter().cloned());
    }
    open.retain(|_, ids| !ids.is_empty());
    open
}

fn first_edges(doc: &GraphDoc) -> BTreeMap<(&str, &str), &EdgeDoc> {
    let mut edges = BTreeMap::new();
    for e in &doc.edges {
        edges
            .entry((e.source.as_str(), e.target.as_str()))
            .or_insert(e);
    }
    edges
}

/// The busiest service called from outside (by a node that is not a
/// service), else the busiest service; ties by id.
fn busiest_entry<'a>(doc: &'a GraphDoc, nodes: &BTreeMap<&str, &NodeDoc>) -> Option<&'a NodeDoc> {
    let is_service = |id: &str| nodes.get(id).is_some_and(|n| n.kind == NodeKind::Service);
    let called_from_outside: BTreeSet<&str> = doc
        .edges
        .iter()
        .filter(|e| !is_service(&e.source))
        .map(|e| e.target.as_str())
        .collect();
    let services = || doc.nodes.iter().filter(|n| n.kind == NodeKind::Service);
    let busiest = |a: &&NodeDoc, b: &&NodeDoc| a.calls.cmp(&b.calls).then(b.id.cmp(&a.id));
    services()
        .filter(|n| called_from_outside.contains(n.id.as_str()))
        .max_by(busiest)
        .or_else(|| services().max_by(busiest))
}
