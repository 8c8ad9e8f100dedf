//! Scenarios: from the ranked hotspots to failure scenarios worth running.
//!
//! [`rules`] map the graph's evidence to faults (deterministic, offline);
//! [`llm`] optionally asks an OpenAI-compatible model for more and
//! validates its answer against the graph; [`build`] turns either kind of
//! proposal into a full [`Scenario`] (hypothesis, guardrails, signals,
//! evidence); [`select`] dedupes, ranks and caps; [`render`] writes them for
//! Toxiproxy, Chaos Mesh, LitmusChaos and Chaos Toolkit. The schema is in
//! `docs/scenarios.md`.

pub mod build;
pub mod facts;
pub mod graph;
pub mod llm;
pub mod model;
pub mod render;
pub mod rules;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use graph::GraphDoc;
pub use model::{
    Evidence, Fault, FaultKind, FaultParams, Guardrails, Hypothesis, Injection, Scenario,
    ScenarioSet, Source, Watch, Workload,
};
pub use settings::{LlmSettings, ScenarioSettings};

use crate::graph::GraphView;
use crate::operators::{AnomalyEvent, Hotspot};
use build::{build, Candidate};
use facts::Facts;

/// Rules only: the same input always gives the same list.
pub fn generate(
    view: &GraphView,
    hotspots: &[Hotspot],
    anomalies: &[AnomalyEvent],
    settings: &ScenarioSettings,
) -> Vec<Scenario> {
    match GraphDoc::from_view(view) {
        Ok(doc) => generate_from_doc(&doc, hotspots, anomalies, settings),
        Err(e) => {
            tracing::error!(error = %e, "graph view does not read back as JSON; no scenarios");
            Vec::new()
        }
    }
}

/// [`generate`] on the `/api/graph` document (as `--server` fetches it).
pub fn generate_from_doc(
    doc: &GraphDoc,
    hotspots: &[Hotspot],
    anomalies: &[AnomalyEvent],
    settings: &ScenarioSettings,
) -> Vec<Scenario> {
    let facts = Facts::new(doc, hotspots, anomalies, settings);
    select(rule_scenarios(&facts), settings)
}

/// What the LLM generator did, for logs, the CLI and tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LlmReport {
    /// No LLM configured: rules only.
    Disabled,
    /// The answer was read; `accepted` scenarios joined the rules'.
    Merged {
        accepted: usize,
        rejected: Vec<llm::Rejection>,
    },
    /// The call or its answer failed; rules only.
    FellBack { reason: String },
}

#[derive(Debug, Clone)]
pub struct Generated {
    pub scenarios: Vec<Scenario>,
    pub llm: LlmReport,
}

/// Rules plus, when `settings.llm` is set, the LLM's scenarios; any LLM
/// failure falls back to the rules' list.
pub async fn generate_with_llm(
    view: &GraphView,
    hotspots: &[Hotspot],
    anomalies: &[AnomalyEvent],
    settings: &ScenarioSettings,
) -> Vec<Scenario> {
    match GraphDoc::from_view(view) {
        Ok(doc) => {
            generate_from_doc_with_llm(&doc, hotspots, anomalies, settings)
                .await
                .scenarios
        }
        Err(e) => {
            tracing::error!(error = %e, "graph view does not read back as JSON; no scenarios");
            Vec::new()
        }
    }
}

/// [`generate_with_llm`] on the `/api/graph` document, with the report.
pub async fn generate_from_doc_with_llm(
    doc: &GraphDoc,
    hotspots: &[Hotspot],
    anomalies: &[AnomalyEvent],
    settings: &ScenarioSettings,
) -> Generated {
    let facts = Facts::new(doc, hotspots, anomalies, settings);
    let mut all = rule_scenarios(&facts);
    let report = match &settings.llm {
        None => LlmReport::Disabled,
        Some(llm_settings) => match llm::propose(&facts, llm_settings).await {
            Ok(proposal) => {
                let (accepted, rejected) = llm::accept(proposal, &facts);
                let report = LlmReport::Merged {
                    accepted: accepted.len(),
                    rejected,
                };
                all.extend(accepted);
                report
            }
            Err(e) => {
                tracing::warn!(error = %e, "LLM scenarios unavailable; using the rules' only");
                LlmReport::FellBack {
                    reason: e.to_string(),
                }
            }
        },
    };
    Generated {
        scenarios: select(all, settings),
        llm: report,
    }
}

fn rule_scenarios(facts: &Facts<'_>) -> Vec<Scenario> {
    rules::candidates(facts)
        .into_iter()
        .filter_map(|c| build_logged(c, facts))
        .collect()
}

fn build_logged(c: Candidate, facts: &Facts<'_>) -> Option<Scenario> {
    let (rule, key) = (c.rule.clone(), c.target.key());
    build(c, facts)
        .map_err(|why| tracing::debug!(rule, target = key, why, "candidate dropped"))
        .ok()
}

/// A second scenario of the same kind on the same target (another latency
/// size, say) competes for the target's slots at this share of its
/// priority, a third at this share squared: variety teaches more.
const REPEAT_DISCOUNT: f64 = 0.8;

/// Dedupes (one scenario per id: the higher priority, rules before the LLM
/// on a tie), keeps the best `max_per_target` per target (preferring
/// variety, see [`REPEAT_DISCOUNT`]) and the best `max_scenarios` in all,
/// and ranks by priority (ties by id, so the order is total).
pub fn select(mut all: Vec<Scenario>, settings: &ScenarioSettings) -> Vec<Scenario> {
    all.sort_by(by_priority);
    let mut ids = BTreeSet::new();
    all.retain(|s| ids.insert(s.id.clone()));
    let mut by_target: BTreeMap<String, Vec<(f64, Scenario)>> = BTreeMap::new();
    let mut seen: BTreeMap<(String, FaultKind), i32> = BTreeMap::new();
    for s in all {
        let key = s.target.key();
        let n = seen.entry((key.clone(), s.fault.kind)).or_default();
        let score = s.priority * REPEAT_DISCOUNT.powi(*n);
        *n += 1;
        by_target.entry(key).or_default().push((score, s));
    }
    let mut out: Vec<Scenario> = Vec::new();
    for (_, mut list) in by_target {
        list.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| by_priority(&a.1, &b.1)));
        out.extend(
            list.into_iter()
                .take(settings.max_per_target)
                .map(|(_, s)| s),
        );
    }
    out.sort_by(by_priority);
    out.truncate(settings.max_scenarios);
    for (i, s) in out.iter_mut().enumerate() {
        s.rank = i + 1;
    }
    out
}

fn by_priority(a: &Scenario, b: &Scenario) -> std::cmp::Ordering {
    b.priority
        .total_cmp(&a.priority)
        .then(a.source.cmp(&b.source))
        .then(a.id.cmp(&b.id))
}
