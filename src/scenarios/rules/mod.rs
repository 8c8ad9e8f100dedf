//! The rule catalog: deterministic, offline, evidence in, faults out.
//!
//! Each rule reads the graph (and the hotspots through [`Facts`]), decides
//! where its fault would teach the most, and says why in words plus the
//! numbers it read. A rule's points are `10 × weight × fit`: the weight is
//! how directly its fault tests a failure *between* services (a retry storm
//! more than a bandwidth cap), the fit in 0..1 how squarely this graph's
//! evidence points at it. Ranking adds the target's hotspot score.

mod load;
mod network;

use super::build::Candidate;
use super::facts::Facts;
use super::graph::EdgeDoc;
use super::model::{round3, Fault, FaultKind, FaultParams};
use crate::graph::partial::EdgeKind;
use load::{cache_degradation, cpu_pressure, reorder, retry_storm, slow_consumer};
use network::{
    bandwidth, connection_reset, dependency_down, dependency_latency, hang, latency_jitter,
    packet_loss,
};

/// Every rule's candidates, in catalog order.
pub fn candidates(facts: &Facts<'_>) -> Vec<Candidate> {
    let edge_rules: [fn(&Facts<'_>, &EdgeDoc) -> Vec<Candidate>; 9] = [
        dependency_latency,
        latency_jitter,
        hang,
        connection_reset,
        packet_loss,
        bandwidth,
        dependency_down,
        retry_storm,
        cache_degradation,
    ];
    let mut out = Vec::new();
    for e in injectable_edges(facts) {
        for rule in edge_rules {
            out.extend(rule(facts, e));
        }
    }
    for d in &facts.doc.destinations {
        if d.produced.max(d.consumed) >= facts.settings.min_calls {
            out.extend(slow_consumer(facts, d));
            out.extend(reorder(facts, d));
        }
    }
    out.extend(cpu_pressure(facts));
    out
}

/// Edges the rules consider, at most. Scenarios are for the top
/// hotspots; on a graph of 10^5 edges, candidates for every edge took
/// hundreds of MiB and most of a core on every ranking change. Smaller
/// graphs (every test workload, most deployments) are not cut at all.
const MAX_EDGES: usize = 256;

/// Synchronous edges from a service with enough calls: the ones a proxy or
/// a network fault can sit on. Messaging edges are handled per destination.
/// Past [`MAX_EDGES`], hotspot edges first (by rank), then the busiest
/// (ties by key, so the choice is stable), in document order.
fn injectable_edges<'a>(facts: &'a Facts<'_>) -> Vec<&'a EdgeDoc> {
    let mut edges: Vec<(usize, &EdgeDoc)> = facts
        .doc
        .edges
        .iter()
        .filter(|e| {
            e.kind != EdgeKind::Messaging
                && e.calls >= facts.settings.min_calls
                && facts.is_service(&e.source)
                && facts.node(&e.target).is_some()
        })
        .enumerate()
        .collect();
    if edges.len() > MAX_EDGES {
        edges.sort_by_cached_key(|(_, e)| {
            let rank = facts.hotspot(&e.key()).map_or(usize::MAX, |h| h.rank);
            (rank, std::cmp::Reverse(e.calls), e.key())
        });
        edges.truncate(MAX_EDGES);
        edges.sort_by_key(|&(i, _)| i);
    }
    edges.into_iter().map(|(_, e)| e).collect()
}

pub(super) fn points(weight: f64, fit: f64) -> f64 {
    10.0 * weight * fit.clamp(0.0, 1.0)
}

/// Two significant digits (at least 1): a p99 that drifts by a few percent
/// between refreshes keeps the same fault size, hence the same id.
pub(super) fn nice(x: f64) -> u64 {
    if !x.is_finite() || x < 1.0 {
        return 1;
    }
    let scale = 10f64.powi(x.log10().floor() as i32 - 1);
    ((x / scale).round() * scale).round() as u64
}

pub(super) fn fault(kind: FaultKind, set: impl FnOnce(&mut FaultParams)) -> Fault {
    let mut params = FaultParams::default();
    set(&mut params);
    Fault { kind, params }
}

pub(super) fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

pub(super) fn edge_candidate(
    rule: &str,
    e: &EdgeDoc,
    fault: Fault,
    weight: f64,
    fit: f64,
) -> Candidate {
    Candidate::new(rule, e.target_ref(), fault, points(weight, fit))
        .observed("calls", e.calls as f64)
        .observed("error_rate", e.error_rate)
        .observed("p99_ms", e.p99())
}

/// The largest share of a path's time this edge takes where it is the
/// path's critical edge (0 when it never is). Rounded: the graph sums
/// shares in no fixed order, so their last bits may differ between runs,
/// and priorities must not.
pub(super) fn critical_share(facts: &Facts<'_>, e: &EdgeDoc) -> f64 {
    let share = facts
        .doc
        .paths
        .iter()
        .filter_map(|p| p.critical_edge.as_ref())
        .filter(|h| h.source == e.source && h.target == e.target)
        .map(|h| h.share)
        .fold(0.0, f64::max);
    round3(share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::{AnomalyEvent, Hotspot};
    use crate::scenarios::graph::GraphDoc;
    use crate::scenarios::settings::ScenarioSettings;

    #[test]
    fn large_graphs_are_cut_to_hotspots_then_the_busiest_edges() {
        let edges = MAX_EDGES + 44;
        let nodes: Vec<_> = (0..=edges)
            .map(|i| serde_json::json!({"id": format!("s{i}"), "kind": "service"}))
            .collect();
        // s0 calls every other service; s1 the least, then more and more.
        let edge_docs: Vec<_> = (1..=edges)
            .map(|i| {
                serde_json::json!({"source": "s0", "target": format!("s{i}"), "kind": "rpc", "calls": 100 + i})
            })
            .collect();
        let doc: GraphDoc =
            serde_json::from_value(serde_json::json!({"nodes": nodes, "edges": edge_docs}))
                .unwrap();
        let hot = Edge("s0", "s1");
        let hotspots: Vec<Hotspot> = vec![serde_json::from_value(serde_json::json!({
            "seq": 1, "rank": 1, "key": hot.key(), "score": 10.0, "components": [],
            "target": {"type": "edge", "source": "s0", "target": "s1", "kind": "rpc"},
            "target_factor": 1.0, "feedback_weight": 1.0, "anomalies": [],
            "signals": {}, "at_ms": 0
        }))
        .unwrap()];
        let settings = ScenarioSettings::default();
        let none: [AnomalyEvent; 0] = [];
        let facts = Facts::new(&doc, &hotspots, &none, &settings);
        let kept = injectable_edges(&facts);
        assert_eq!(kept.len(), MAX_EDGES);
        // The hotspot (the quietest edge) first in document order, then the
        // busiest: the 255 targets from s46 up.
        assert_eq!(kept[0].target, "s1");
        assert_eq!(kept[1].target, "s46");
        assert_eq!(kept.last().unwrap().target, format!("s{edges}"));
        // A small graph is not cut.
        let small = GraphDoc {
            nodes: doc.nodes[..10].to_vec(),
            edges: doc.edges[..9].to_vec(),
            ..GraphDoc::default()
        };
        let facts = Facts::new(&small, &hotspots, &none, &settings);
        assert_eq!(injectable_edges(&facts).len(), 9);
    }

    struct Edge(&'static str, &'static str);

    impl Edge {
        fn key(&self) -> String {
            format!("edge:{}->{}", self.0, self.1)
        }
    }

    #[test]
    fn nice_keeps_two_significant_digits() {
        assert_eq!(nice(334.078), 330);
        assert_eq!(nice(167.039), 170);
        assert_eq!(nice(9.6), 10);
        assert_eq!(nice(0.2), 1);
        assert_eq!(nice(12_345.0), 12_000);
    }
}
