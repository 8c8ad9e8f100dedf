//! [`GraphView`]: the merged graph as the API, `analyze` and exporters show it.
//!
//! Field names are a public contract (`GET /api/graph`); add, never rename.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::pairing::PairingCounters;
use super::partial::{EdgeKind, NodeKind, WindowPartial};
use super::stats::{CallStats, LatencySummary};
use super::window::WindowSelect;

#[derive(Debug, Serialize)]
pub struct GraphView {
    pub generated_at: String,
    pub window: WindowInfo,
    pub nodes: Vec<NodeView>,
    pub edges: Vec<EdgeView>,
    pub unpaired: PairingCounters,
}

#[derive(Debug, Serialize)]
pub struct WindowInfo {
    /// `current`, `all`, or `last` (with `count`).
    pub select: &'static str,
    pub count: Option<usize>,
    pub length_seconds: f64,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct NodeView {
    pub id: String,
    pub kind: NodeKind,
    pub system: Option<String>,
    pub calls: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency_ms: Option<LatencySummary>,
    /// Distinct nodes reachable downstream of this one.
    pub fan_out: usize,
    pub operations: Vec<OperationView>,
}

#[derive(Debug, Serialize)]
pub struct OperationView {
    pub name: String,
    pub calls: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency_ms: Option<LatencySummary>,
}

#[derive(Debug, Serialize)]
pub struct EdgeView {
    pub source: String,
    pub target: String,
    pub kind: EdgeKind,
    pub calls: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// The caller's view of each call.
    pub latency_ms: Option<LatencySummary>,
    /// The callee's own span, where it was seen.
    pub server_latency_ms: Option<LatencySummary>,
    /// Messaging only: consumer start minus producer end.
    pub queue_latency_ms: Option<LatencySummary>,
}

impl WindowInfo {
    pub fn new(select: WindowSelect, length_ms: u64, start_ms: u64, end_ms: u64) -> WindowInfo {
        let (name, count) = match select {
            WindowSelect::Current => ("current", None),
            WindowSelect::Last(n) => ("last", Some(n)),
            WindowSelect::All => ("all", None),
        };
        WindowInfo {
            select: name,
            count,
            length_seconds: length_ms as f64 / 1000.0,
            start_ms,
            end_ms,
        }
    }
}

fn rate(errors: u64, calls: u64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        errors as f64 / calls as f64
    }
}

impl GraphView {
    pub fn build(
        partial: &WindowPartial,
        window: WindowInfo,
        unpaired: PairingCounters,
    ) -> GraphView {
        let edges: BTreeMap<_, _> = partial.edges.iter().collect();
        let fan_out = fan_out(
            &partial
                .edges
                .keys()
                .map(|k| (&k.source, &k.target))
                .collect::<Vec<_>>(),
        );
        let nodes: BTreeMap<_, _> = partial.nodes.iter().collect();
        GraphView {
            generated_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            window,
            nodes: nodes
                .into_iter()
                .map(|(id, n)| NodeView {
                    id: id.to_string(),
                    kind: n.kind,
                    system: n.system.as_deref().map(str::to_owned),
                    calls: n.stats.calls.calls,
                    errors: n.stats.calls.errors,
                    error_rate: rate(n.stats.calls.errors, n.stats.calls.calls),
                    latency_ms: n.stats.calls.latency.summary(),
                    fan_out: fan_out.get(id).copied().unwrap_or(0),
                    operations: operations(&n.stats.operations),
                })
                .collect(),
            edges: edges
                .into_iter()
                .map(|(k, e)| EdgeView {
                    source: k.source.to_string(),
                    target: k.target.to_string(),
                    kind: k.kind,
                    calls: e.calls,
                    errors: e.errors,
                    error_rate: rate(e.errors, e.calls),
                    latency_ms: e.client.summary(),
                    server_latency_ms: e.server.summary(),
                    queue_latency_ms: e.queue.summary(),
                })
                .collect(),
            unpaired,
        }
    }

    pub fn node(&self, id: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn edge(&self, source: &str, target: &str) -> Option<&EdgeView> {
        self.edges
            .iter()
            .find(|e| e.source == source && e.target == target)
    }
}

fn operations(ops: &HashMap<Arc<str>, CallStats>) -> Vec<OperationView> {
    let sorted: BTreeMap<_, _> = ops.iter().collect();
    sorted
        .into_iter()
        .map(|(name, s)| OperationView {
            name: name.to_string(),
            calls: s.calls,
            errors: s.errors,
            error_rate: rate(s.errors, s.calls),
            latency_ms: s.latency.summary(),
        })
        .collect()
}

/// For each node, how many distinct nodes are reachable from it.
fn fan_out<'a>(edges: &[(&'a Arc<str>, &'a Arc<str>)]) -> HashMap<&'a Arc<str>, usize> {
    let mut next: HashMap<&Arc<str>, Vec<&Arc<str>>> = HashMap::new();
    for (s, t) in edges {
        next.entry(*s).or_default().push(*t);
    }
    next.keys()
        .map(|start| {
            let mut seen: BTreeSet<&Arc<str>> = BTreeSet::new();
            let mut todo: VecDeque<&Arc<str>> = VecDeque::from([*start]);
            while let Some(n) = todo.pop_front() {
                for t in next.get(n).into_iter().flatten() {
                    if t != start && seen.insert(*t) {
                        todo.push_back(*t);
                    }
                }
            }
            (*start, seen.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_counts_distinct_reachable_nodes() {
        let names: Vec<Arc<str>> = ["a", "b", "c", "d"].iter().map(|s| Arc::from(*s)).collect();
        let (a, b, c, d) = (&names[0], &names[1], &names[2], &names[3]);
        let edges = vec![(a, b), (b, c), (a, c), (c, d), (d, b)];
        let f = fan_out(&edges);
        assert_eq!(f[a], 3);
        assert_eq!(f[b], 2);
        assert_eq!(f.get(&names[3]).copied(), Some(2));
    }
}
