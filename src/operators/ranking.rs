//! Hotspot ranking: a score per target from its signals, with every
//! component shown.
//!
//! The score is a sum of points, one term per component, times the target's
//! feedback weight. Points grow with logarithms where the raw value spans
//! orders of magnitude (latency, lag, fan-out), so no single huge number
//! drowns the rest; the weights are in `processors.operators.weights`.

use std::collections::{BTreeMap, HashMap};

use super::records::{Hotspot, ScoreComponent, SignalName, SignalRecord, Target};
use super::settings::Weights;

/// What ranking needs beside the signal records.
pub struct RankContext<'a> {
    /// Downstream nodes of each node (from the graph view).
    pub fan_out: &'a HashMap<String, usize>,
    /// Active anomaly ids per target key.
    pub anomalies: &'a HashMap<String, Vec<String>>,
    /// Feedback weight per target key (missing: 1).
    pub feedback: &'a HashMap<String, f64>,
    pub weights: &'a Weights,
    pub top_k: usize,
    pub at_ms: u64,
}

/// Scores every record's target and returns the top K, riskiest first.
/// Ties break on the key, so the same input always ranks the same way.
pub fn rank(records: &[SignalRecord], ctx: &RankContext<'_>) -> Vec<Hotspot> {
    let mut scored: Vec<Hotspot> = records
        .iter()
        .filter(|r| !matches!(r.target, Target::Cluster { .. }))
        .map(|r| score(r, ctx))
        .filter(|h| h.score > 0.0)
        .collect();
    scored.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.key.cmp(&b.key))
    });
    scored.truncate(ctx.top_k);
    for (i, h) in scored.iter_mut().enumerate() {
        h.rank = i + 1;
    }
    scored
}

fn value(r: &SignalRecord, name: SignalName) -> Option<f64> {
    r.signals.get(name.as_str()).map(|s| s.value)
}

fn score(r: &SignalRecord, ctx: &RankContext<'_>) -> Hotspot {
    let w = ctx.weights;
    let mut parts = Vec::new();
    let mut add = |name: &str, value: f64, points: f64, why: String| {
        if points > 0.0 {
            parts.push(ScoreComponent {
                name: name.into(),
                value,
                points,
                why,
            });
        }
    };
    if let Some(e) = value(r, SignalName::ErrorRate) {
        add(
            "error_rate",
            e,
            w.error_rate * e,
            format!("{:.1}% of calls failed", e * 100.0),
        );
    }
    if let Some(p99) = r.signals.get(SignalName::P99Ms.as_str()) {
        add(
            "tail_latency",
            p99.value,
            w.tail_latency * (1.0 + p99.value).log10(),
            format!("p99 is {:.1} ms", p99.value),
        );
        if let Some(b) = p99.baseline.filter(|b| b.median > 0.0) {
            let ratio = p99.value / b.median;
            add(
                "p99_vs_baseline",
                ratio,
                w.p99_vs_baseline * ratio.log2().max(0.0),
                format!(
                    "p99 is {ratio:.1}× its baseline median of {:.1} ms",
                    b.median
                ),
            );
        }
    }
    if let Some(t) = value(r, SignalName::TimeoutRate) {
        add(
            "timeouts",
            t,
            w.timeouts * t,
            format!("{:.1}% of calls timed out", t * 100.0),
        );
    }
    if let Some(a) = value(r, SignalName::RetryAmplification) {
        add(
            "retry_amplification",
            a,
            w.retry_amplification * (a - 1.0).max(0.0),
            format!("{a:.2} attempts per logical call"),
        );
    }
    if let Some(lag) = value(r, SignalName::QueueLagMs) {
        add(
            "queue_lag",
            lag,
            w.queue_lag * (1.0 + lag / 1000.0).log2(),
            format!("messages wait {:.0} ms in the queue on average", lag),
        );
    }
    let downstream = downstream(&r.target, ctx.fan_out);
    add(
        "fan_out",
        downstream as f64,
        w.fan_out * (1.0 + downstream as f64).log2(),
        format!("{downstream} nodes downstream would feel it"),
    );
    let anomalies = ctx.anomalies.get(&r.key).cloned().unwrap_or_default();
    add(
        "anomalies",
        anomalies.len() as f64,
        w.anomalies * anomalies.len() as f64,
        format!("{} anomalies active", anomalies.len()),
    );
    let feedback = ctx.feedback.get(&r.key).copied().unwrap_or(1.0);
    let base: f64 = parts.iter().map(|c| c.points).sum();
    let factor = match r.target {
        Target::Path { .. } => w.path_factor,
        _ => 1.0,
    };
    Hotspot {
        seq: 0,
        rank: 0,
        key: r.key.clone(),
        target: r.target.clone(),
        score: base * factor * feedback,
        components: parts,
        target_factor: factor,
        feedback_weight: feedback,
        anomalies,
        signals: r
            .signals
            .iter()
            .map(|(k, s)| (k.clone(), s.value))
            .collect::<BTreeMap<_, _>>(),
        at_ms: ctx.at_ms,
    }
}

/// Nodes downstream of a target: the callee and everything it reaches.
fn downstream(target: &Target, fan_out: &HashMap<String, usize>) -> usize {
    let node = match target {
        Target::Edge { target, .. } => target,
        Target::Path { nodes } => match nodes.get(1) {
            Some(n) => n,
            None => return 0,
        },
        Target::Destination { name } => name,
        Target::Cluster { .. } => return 0,
    };
    1 + fan_out.get(node).copied().unwrap_or(0)
}
