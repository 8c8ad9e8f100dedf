//! Raw signals: the values of each target in one view of the graph.
//!
//! A view is one closed window (live) or everything imported (offline).
//! Baselines and anomaly judgement come later ([`super::baseline`]); this
//! module only reads numbers off the view.

use std::collections::{BTreeMap, HashMap};

use super::records::{Signal, SignalName, SignalRecord, Target};
use crate::graph::view::{DestinationView, EdgeView, PathView};
use crate::graph::GraphView;

/// One target's values in one view.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub target: Target,
    /// Calls, traces or messages behind the values.
    pub calls: u64,
    pub values: BTreeMap<SignalName, f64>,
}

/// Every target's values. `depth` gives a destination's in-flight estimate
/// when the caller tracks it across windows (live); otherwise the view's own
/// produced − consumed is used.
pub fn observe(view: &GraphView, depth: &dyn Fn(&DestinationView) -> u64) -> Vec<Observed> {
    let amplification: HashMap<(&str, &str), f64> = view
        .edges
        .iter()
        .map(|e| ((e.source.as_str(), e.target.as_str()), amplification_of(e)))
        .collect();
    let mut out: Vec<Observed> = view.edges.iter().map(edge).collect();
    out.extend(view.paths.iter().map(|p| path(p, &amplification)));
    out.extend(view.clusters.iter().map(|c| Observed {
        target: Target::Cluster {
            signature: c.signature.clone(),
            edges: c.edges.clone(),
        },
        calls: c.traces,
        values: BTreeMap::from([
            (SignalName::ErrorRate, c.error_rate),
            (SignalName::P99Ms, c.latency_ms.map_or(0.0, |l| l.p99)),
        ]),
    }));
    out.extend(view.destinations.iter().map(|d| destination(d, depth(d))));
    out
}

/// Records of a window still open: its values so far, judged against
/// nothing (no baseline, z or anomaly; those need the window's final
/// values, and judging a partial window against whole ones would raise
/// false alarms). `GET /api/signals?open=true` serves them beside the
/// closed window's records, so a change shows within one tick instead of
/// after the window closes; the stream `signals` carries only closed windows.
pub fn provisional(view: &GraphView) -> Vec<SignalRecord> {
    let (start, end) = (view.window.start_ms, view.window.end_ms);
    observe(view, &|d| d.in_flight)
        .into_iter()
        .map(|o| SignalRecord {
            seq: 0,
            key: o.target.key(),
            target: o.target,
            window_start_ms: start,
            window_end_ms: end,
            calls: o.calls,
            signals: o
                .values
                .into_iter()
                .map(|(name, value)| (name.as_str(), unjudged(value)))
                .collect(),
        })
        .collect()
}

fn unjudged(value: f64) -> Signal {
    Signal {
        value,
        baseline: None,
        z: None,
        within_tolerance: true,
    }
}

fn amplification_of(e: &EdgeView) -> f64 {
    let logical = e.attempts.saturating_sub(e.retries);
    if logical == 0 {
        1.0
    } else {
        e.attempts as f64 / logical as f64
    }
}

fn edge(e: &EdgeView) -> Observed {
    let calls = e.calls.max(1) as f64;
    Observed {
        target: Target::edge(&e.source, &e.target, e.kind),
        calls: e.calls,
        values: BTreeMap::from([
            (SignalName::ErrorRate, e.error_rate),
            (SignalName::TimeoutRate, e.timeouts as f64 / calls),
            (SignalName::P99Ms, e.latency_ms.map_or(0.0, |l| l.p99)),
            (SignalName::Retries, e.retries as f64),
            (SignalName::RetryAmplification, amplification_of(e)),
        ]),
    }
}

/// A path's retry amplification is the product of its hops': retries at
/// each layer multiply, which is how retry storms grow.
fn path(p: &PathView, amplification: &HashMap<(&str, &str), f64>) -> Observed {
    let product: f64 = p
        .hops
        .iter()
        .map(|h| {
            amplification
                .get(&(h.source.as_str(), h.target.as_str()))
                .copied()
                .unwrap_or(1.0)
        })
        .product();
    Observed {
        target: Target::Path {
            nodes: p.nodes.clone(),
        },
        calls: p.traces,
        values: BTreeMap::from([
            (SignalName::ErrorRate, p.error_rate),
            (SignalName::P99Ms, p.latency_ms.map_or(0.0, |l| l.p99)),
            (SignalName::RetryAmplification, product),
        ]),
    }
}

fn destination(d: &DestinationView, depth: u64) -> Observed {
    Observed {
        target: Target::Destination {
            name: d.name.clone(),
        },
        calls: d.produced.max(d.consumed),
        values: BTreeMap::from([
            (SignalName::QueueDepth, depth as f64),
            (SignalName::QueueLagMs, d.lag_ms.map_or(0.0, |l| l.mean)),
            (SignalName::OutOfOrder, d.out_of_order as f64),
        ]),
    }
}
