//! From a candidate (a rule's or the LLM's proposal) to a full scenario:
//! where it is injected, the hypothesis, guardrails, signals, evidence and
//! priority. Rules and the LLM share this, so their scenarios read alike.

use std::collections::{BTreeMap, BTreeSet};

use super::facts::Facts;
use super::graph::PathDoc;
use super::model::{
    round3, scenario_id, Evidence, Fault, FaultKind, Guardrails, HotspotEvidence, Hypothesis,
    Scenario, Source, Watch,
};
use crate::operators::Target;

/// Points per active anomaly on the target or its impacted path.
const ANOMALY_POINTS: f64 = 2.0;

/// A proposed scenario before it is fleshed out.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The rule's name, or `llm`.
    pub rule: String,
    pub title: String,
    pub target: Target,
    pub fault: Fault,
    /// The rule's share of the priority (10 × weight × fit for rules).
    pub points: f64,
    pub why: String,
    pub observed: BTreeMap<String, f64>,
    /// The signals this rule expects to move, listed first.
    pub outcome: Vec<Watch>,
    pub source: Source,
}

impl Candidate {
    pub fn new(rule: &str, target: Target, fault: Fault, points: f64) -> Candidate {
        Candidate {
            rule: rule.to_owned(),
            title: String::new(),
            target,
            fault,
            points,
            why: String::new(),
            observed: BTreeMap::new(),
            outcome: Vec::new(),
            source: Source::Rules,
        }
    }

    pub fn title(mut self, title: String) -> Candidate {
        self.title = title;
        self
    }

    pub fn why(mut self, why: String) -> Candidate {
        self.why = why;
        self
    }

    pub fn observed(mut self, name: &str, value: f64) -> Candidate {
        self.observed.insert(name.to_owned(), round3(value));
        self
    }

    pub fn watch(mut self, key: &str, signal: &str, why: &str) -> Candidate {
        self.outcome.push(watch(key, signal, why));
        self
    }
}

fn watch(key: &str, signal: &str, why: &str) -> Watch {
    Watch {
        key: key.to_owned(),
        signal: signal.to_owned(),
        why: why.to_owned(),
    }
}

/// Fleshes out a candidate, or says why it cannot be run.
pub fn build(c: Candidate, facts: &Facts<'_>) -> Result<Scenario, String> {
    c.fault.kind.check(&c.fault.params)?;
    let inject = facts.injection(&c.target, c.fault.kind)?;
    let path = facts.impacted_path(&c.target);
    let edge_p99 = match &c.target {
        Target::Edge { source, target, .. } => facts.edge(source, target).map_or(0.0, |e| e.p99()),
        _ => 0.0,
    };
    let hypothesis = hypothesis(&c, facts, path, edge_p99);
    let signals = signals(&c, path);
    let guardrails = guardrails(&c, facts, path);
    let evidence = evidence(&c, facts, path);
    let priority = round3(evidence.points.values().sum());
    let settings = facts.settings;
    let stretch = if c.fault.kind == FaultKind::SlowConsumer {
        2
    } else {
        1
    };
    Ok(Scenario {
        id: scenario_id(&c.target, &c.fault),
        rank: 0,
        title: c.title,
        target: c.target,
        fault: c.fault,
        inject,
        // A queue needs time to back up before the consumer's effect shows.
        duration_s: settings.duration.as_secs() * stretch,
        hypothesis,
        guardrails,
        signals,
        evidence,
        source: c.source,
        priority,
    })
}

/// Latency the fault adds to a request on the impacted path if callers
/// cope well: the delay itself; for a hang, callers giving up within 3×
/// the edge's p99; for failed calls, one retry's worth; nothing for a slow
/// consumer, since producers must not wait for consumers.
fn tolerated_ms(fault: &Fault, edge_p99: f64) -> f64 {
    match fault.kind {
        FaultKind::Latency
        | FaultKind::LatencyJitter
        | FaultKind::Reorder
        | FaultKind::CacheDegradation => fault.params.added_ms() as f64 + edge_p99,
        FaultKind::Timeout => 3.0 * edge_p99,
        FaultKind::SlowConsumer => 0.0,
        FaultKind::Bandwidth => 2.0 * edge_p99,
        _ => edge_p99,
    }
}

fn hypothesis(
    c: &Candidate,
    facts: &Facts<'_>,
    path: Option<&PathDoc>,
    edge_p99: f64,
) -> Hypothesis {
    let s = facts.settings;
    let target_key = c.target.key();
    let boundaries: Vec<String> = path
        .map(|p| {
            p.hops
                .iter()
                .map(|h| format!("edge:{}->{}", h.source, h.target))
                .filter(|k| *k != target_key)
                .collect()
        })
        .unwrap_or_default();
    let max_p99 = path.map(|p| round3(p.p99() * 1.1 + tolerated_ms(&c.fault, edge_p99)));
    let amplification = match &c.target {
        Target::Edge { source, target, .. } => facts
            .edge(source, target)
            .map(|e| round3(e.amplification().max(1.0) + s.retry_budget)),
        _ => None,
    };
    let queues = match &c.target {
        Target::Destination { .. } => vec![target_key.clone()],
        _ => Vec::new(),
    };
    let recover = s.recover_within.as_secs();
    let mut text = format!(
        "While \"{}\" runs ({} on {target_key}):",
        c.title, c.fault.kind
    );
    if !boundaries.is_empty() {
        text += &format!(
            " the error rate stays within tolerance at {};",
            boundaries.join(", ")
        );
    }
    if let (Some(p), Some(max)) = (path, max_p99) {
        text += &format!(" p99 of {} stays under {max} ms;", p.key());
    }
    if let Some(a) = amplification {
        text += &format!(" retries stay under {a} attempts per call;");
    }
    if !queues.is_empty() {
        text += &format!(" {target_key} drains back to its depth;");
    }
    text +=
        &format!(" every signal is back within tolerance {recover} s after the fault is removed.");
    Hypothesis {
        text,
        boundaries,
        path: path.map(PathDoc::key),
        max_path_p99_ms: max_p99,
        max_retry_amplification: amplification,
        queues,
        recover_within_s: recover,
    }
}

/// The rule's signals, then the five standard ones, each (key, signal) once.
fn signals(c: &Candidate, path: Option<&PathDoc>) -> Vec<Watch> {
    let key = c.target.key();
    let mut list = c.outcome.clone();
    if let Some(p) = path {
        for h in &p.hops {
            let edge = format!("edge:{}->{}", h.source, h.target);
            list.push(watch(
                &edge,
                "error_rate",
                "error rate at each boundary of the impacted path",
            ));
        }
        list.push(watch(&p.key(), "p99_ms", "p99 on the impacted path"));
    }
    match &c.target {
        Target::Edge { .. } => {
            list.push(watch(
                &key,
                "error_rate",
                "error rate at the faulted boundary",
            ));
            list.push(watch(&key, "retries", "retries the callers make"));
        }
        Target::Destination { .. } => {
            list.push(watch(&key, "queue_depth", "messages waiting in the queue"));
        }
        _ => {}
    }
    list.push(watch(
        &key,
        "time_to_recover",
        "how long until every signal is back within tolerance",
    ));
    let mut seen = BTreeSet::new();
    list.retain(|w| seen.insert((w.key.clone(), w.signal.clone())));
    list
}

fn guardrails(c: &Candidate, facts: &Facts<'_>, path: Option<&PathDoc>) -> Guardrails {
    let g = &facts.settings.guardrails;
    let entry = facts.entry(path);
    let name = entry.map_or_else(|| c.target.key(), |n| n.id.clone());
    let workload = facts.workload(&name);
    let error_rate = entry.map_or(0.0, |n| n.error_rate);
    let p99 = entry.and_then(|n| n.latency_ms).map_or(0.0, |l| l.p99);
    let added = match c.fault.kind {
        FaultKind::SlowConsumer => 0,
        FaultKind::Timeout => c.fault.params.timeout_ms.unwrap_or(0),
        _ => c.fault.params.added_ms(),
    };
    Guardrails {
        entry: workload,
        max_error_rate: round3((error_rate + g.error_rate_margin).min(1.0)),
        max_p99_ms: round3((p99 + added as f64) * g.p99_factor),
        observed_error_rate: round3(error_rate),
        observed_p99_ms: round3(p99),
    }
}

fn evidence(c: &Candidate, facts: &Facts<'_>, path: Option<&PathDoc>) -> Evidence {
    let mut keys = vec![c.target.key()];
    keys.extend(path.map(PathDoc::key));
    let hotspots: Vec<HotspotEvidence> = keys
        .iter()
        .filter_map(|k| facts.hotspot(k))
        .map(|h| HotspotEvidence {
            key: h.key.clone(),
            rank: h.rank,
            score: round3(h.score),
            components: h.components.clone(),
        })
        .collect();
    let target_score = hotspots
        .iter()
        .find(|h| h.key == keys[0])
        .map_or(0.0, |h| h.score);
    let anomalies = facts.anomaly_ids(&keys);
    let points = BTreeMap::from([
        ("rule".to_owned(), round3(c.points)),
        ("hotspot".to_owned(), target_score),
        (
            "anomalies".to_owned(),
            ANOMALY_POINTS * anomalies.len() as f64,
        ),
    ]);
    Evidence {
        rule: c.rule.clone(),
        why: c.why.clone(),
        observed: c.observed.clone(),
        hotspots,
        anomalies,
        points,
    }
}
