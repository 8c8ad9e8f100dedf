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
use super::signals::Observed;

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

/// One target as ranking reads it: its values in the ranked view, and the
/// latest window's judgement of them (for baselines), when there is one.
pub struct Candidate<'a> {
    pub key: String,
    pub observed: &'a Observed,
    pub judged: Option<&'a SignalRecord>,
}

/// Scores every candidate and returns the top K, riskiest first, each with
/// its score explained. Ties break on the key, so the same input always
/// ranks the same way.
///
/// Scoring every target is a sum of a few numbers; the explanations (text,
/// components, anomaly ids) are written only for the K kept. With 10^5
/// edges, explaining every target first took a third of the live loop's
/// memory peak.
pub fn rank(candidates: &[Candidate<'_>], ctx: &RankContext<'_>) -> Vec<Hotspot> {
    let mut scored: Vec<(f64, &Candidate<'_>)> = candidates
        .iter()
        .filter(|c| !matches!(c.observed.target, Target::Cluster { .. }))
        .map(|c| (score(c, ctx), c))
        .filter(|(s, _)| *s > 0.0)
        .collect();
    let order = |a: &(f64, &Candidate<'_>), b: &(f64, &Candidate<'_>)| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.1.key.cmp(&b.1.key))
    };
    if scored.len() > ctx.top_k && ctx.top_k > 0 {
        scored.select_nth_unstable_by(ctx.top_k - 1, order);
    }
    scored.truncate(ctx.top_k);
    scored.sort_by(order);
    scored
        .into_iter()
        .enumerate()
        .map(|(i, (_, c))| Hotspot {
            rank: i + 1,
            ..explain(c, ctx)
        })
        .collect()
}

/// A target's score: the sum of its terms' points, times its factor and
/// feedback weight. [`explain`] sums the same terms in the same order, so
/// both give the same number.
fn score(c: &Candidate<'_>, ctx: &RankContext<'_>) -> f64 {
    let mut base = 0.0;
    terms(c, ctx, &mut |_, _, points, _| {
        if points > 0.0 {
            base += points;
        }
    });
    base * factor(c, ctx) * feedback(c, ctx)
}

/// The hotspot of one target, every term of its score explained.
fn explain(c: &Candidate<'_>, ctx: &RankContext<'_>) -> Hotspot {
    let mut parts = Vec::new();
    terms(c, ctx, &mut |name, value, points, why| {
        if points > 0.0 {
            parts.push(ScoreComponent {
                name: name.into(),
                value,
                points,
                why: why(),
            });
        }
    });
    let base: f64 = parts.iter().map(|p| p.points).sum();
    let (factor, feedback) = (factor(c, ctx), feedback(c, ctx));
    Hotspot {
        seq: 0,
        rank: 0,
        key: c.key.clone(),
        target: c.observed.target.clone(),
        score: base * factor * feedback,
        components: parts,
        target_factor: factor,
        feedback_weight: feedback,
        anomalies: ctx.anomalies.get(&c.key).cloned().unwrap_or_default(),
        signals: c
            .observed
            .values
            .iter()
            .map(|(name, &v)| (name.as_str().to_owned(), v))
            .collect::<BTreeMap<_, _>>(),
        at_ms: ctx.at_ms,
    }
}

fn factor(c: &Candidate<'_>, ctx: &RankContext<'_>) -> f64 {
    match c.observed.target {
        Target::Path { .. } => ctx.weights.path_factor,
        _ => 1.0,
    }
}

fn feedback(c: &Candidate<'_>, ctx: &RankContext<'_>) -> f64 {
    ctx.feedback.get(&c.key).copied().unwrap_or(1.0)
}

/// A term of a score: its name, the value it reads, its points, and its
/// explanation (made only when called).
type Term<'f> = dyn FnMut(&'static str, f64, f64, &dyn Fn() -> String) + 'f;

/// Every term of a target's score, in a fixed order.
fn terms(c: &Candidate<'_>, ctx: &RankContext<'_>, add: &mut Term<'_>) {
    let w = ctx.weights;
    let value = |name: SignalName| c.observed.values.get(&name).copied();
    if let Some(e) = value(SignalName::ErrorRate) {
        let why = || format!("{:.1}% of calls failed", e * 100.0);
        add("error_rate", e, w.error_rate * e, &why);
    }
    if let Some(p99) = value(SignalName::P99Ms) {
        let why = || format!("p99 is {p99:.1} ms");
        add(
            "tail_latency",
            p99,
            w.tail_latency * (1.0 + p99).log10(),
            &why,
        );
        let baseline = c
            .judged
            .and_then(|r| r.signals.get(SignalName::P99Ms.as_str()))
            .and_then(|s| s.baseline.as_deref().copied())
            .filter(|b| b.median > 0.0);
        if let Some(b) = baseline {
            let ratio = p99 / b.median;
            let why = || {
                format!(
                    "p99 is {ratio:.1}× its baseline median of {:.1} ms",
                    b.median
                )
            };
            let points = w.p99_vs_baseline * ratio.log2().max(0.0);
            add("p99_vs_baseline", ratio, points, &why);
        }
    }
    if let Some(t) = value(SignalName::TimeoutRate) {
        let why = || format!("{:.1}% of calls timed out", t * 100.0);
        add("timeouts", t, w.timeouts * t, &why);
    }
    if let Some(a) = value(SignalName::RetryAmplification) {
        let why = || format!("{a:.2} attempts per logical call");
        let points = w.retry_amplification * (a - 1.0).max(0.0);
        add("retry_amplification", a, points, &why);
    }
    if let Some(lag) = value(SignalName::QueueLagMs) {
        let why = || format!("messages wait {lag:.0} ms in the queue on average");
        add(
            "queue_lag",
            lag,
            w.queue_lag * (1.0 + lag / 1000.0).log2(),
            &why,
        );
    }
    let downstream = downstream(&c.observed.target, ctx.fan_out) as f64;
    let why = || format!("{downstream} nodes downstream would feel it");
    add(
        "fan_out",
        downstream,
        w.fan_out * (1.0 + downstream).log2(),
        &why,
    );
    let anomalies = ctx.anomalies.get(&c.key).map_or(0, Vec::len) as f64;
    let why = || format!("{anomalies} anomalies active");
    add("anomalies", anomalies, w.anomalies * anomalies, &why);
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
