//! [`GraphView`]: the merged graph as the API, `analyze` and exporters show it.
//!
//! Field names are a public contract (`GET /api/graph`); add, never rename.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// Root-to-leaf chains of nodes seen in assembled traces, busiest first.
    pub paths: Vec<PathView>,
    /// Traces grouped by the set of edges they cross, busiest first.
    pub clusters: Vec<ClusterView>,
    /// Messaging destinations (topics, queues).
    pub destinations: Vec<DestinationView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HopView {
    pub source: String,
    pub target: String,
    /// Mean share of the end-to-end time spent in this hop alone (0..1).
    pub share: f64,
}

#[derive(Debug, Serialize)]
pub struct PathView {
    pub nodes: Vec<String>,
    pub traces: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// End to end: the root span's duration.
    pub latency_ms: Option<LatencySummary>,
    pub hops: Vec<HopView>,
    /// The hop with the largest share: where the path's time goes.
    pub critical_edge: Option<HopView>,
}

#[derive(Debug, Serialize)]
pub struct ClusterView {
    pub signature: String,
    pub edges: Vec<String>,
    pub traces: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency_ms: Option<LatencySummary>,
}

#[derive(Debug, Serialize)]
pub struct DestinationView {
    pub name: String,
    pub system: Option<String>,
    pub produced: u64,
    pub consumed: u64,
    /// Services that produced to it (at most 16 listed), sorted.
    pub producers: Vec<String>,
    /// Services that consumed from it (at most 16 listed), sorted.
    pub consumers: Vec<String>,
    /// Produced minus consumed over the selected windows (at least 0).
    pub in_flight: u64,
    /// Consumer start minus producer end.
    pub lag_ms: Option<LatencySummary>,
    /// Deliveries whose message was produced before one of the same key
    /// consumed earlier, within the selected windows.
    pub out_of_order: u64,
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
    pub k8s_namespace: Option<String>,
    pub k8s_deployment: Option<String>,
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
    /// Calls that failed by timing out.
    pub timeouts: u64,
    /// Client spans on this edge in assembled traces, and the retries among them.
    pub attempts: u64,
    pub retries: u64,
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

pub(crate) fn rate(errors: u64, calls: u64) -> f64 {
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
                    k8s_namespace: n.k8s_namespace.as_deref().map(str::to_owned),
                    k8s_deployment: n.k8s_deployment.as_deref().map(str::to_owned),
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
                    timeouts: e.timeouts,
                    attempts: e.attempts,
                    retries: e.retries,
                    latency_ms: e.client.summary(),
                    server_latency_ms: e.server.summary(),
                    queue_latency_ms: e.queue.summary(),
                })
                .collect(),
            unpaired,
            paths: super::traces::path_views(&partial.paths),
            clusters: super::traces::cluster_views(&partial.clusters),
            destinations: super::messaging::destination_views(&partial.destinations),
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

fn operations(ops: &super::partial::FastMap<Arc<str>, CallStats>) -> Vec<OperationView> {
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
///
/// One breadth-first walk per node with edges; names become dense indexes
/// first and `seen` is a stamp per node, so a walk touches integers only.
/// Why: with 10^5 edges among 300 services, walks over names and ordered
/// sets of them took seconds per view, and a view is built for every
/// evaluated window.
fn fan_out<'a>(edges: &[(&'a Arc<str>, &'a Arc<str>)]) -> HashMap<&'a Arc<str>, usize> {
    let mut index: HashMap<&Arc<str>, u32> = HashMap::new();
    let mut names: Vec<&Arc<str>> = Vec::new();
    let mut id = |n: &'a Arc<str>| {
        *index.entry(n).or_insert_with(|| {
            names.push(n);
            names.len() as u32 - 1
        })
    };
    let pairs: Vec<(u32, u32)> = edges.iter().map(|(s, t)| (id(s), id(t))).collect();
    let mut next: Vec<Vec<u32>> = vec![Vec::new(); names.len()];
    for (s, t) in pairs {
        next[s as usize].push(t);
    }
    for targets in &mut next {
        targets.sort_unstable();
        targets.dedup();
    }
    let mut seen = vec![u32::MAX; names.len()];
    let mut todo = VecDeque::new();
    let mut out = HashMap::new();
    for start in 0..names.len() as u32 {
        if next[start as usize].is_empty() {
            continue;
        }
        seen[start as usize] = start;
        todo.push_back(start);
        let mut reached = 0;
        while let Some(n) = todo.pop_front() {
            for &t in &next[n as usize] {
                if seen[t as usize] != start {
                    seen[t as usize] = start;
                    reached += 1;
                    todo.push_back(t);
                }
            }
        }
        out.insert(names[start as usize], reached);
    }
    out
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
