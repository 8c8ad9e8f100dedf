//! A generated scenario as an experiment plan: the Toxiproxy renderer's
//! toxics on the scenario's proxy, its watch list and hypothesis.

use std::collections::BTreeMap;
use std::time::Duration;

use super::plan::{Guardrails, Hypothesis, Plan};
use crate::scenarios::render::toxiproxy;
use crate::scenarios::{Scenario, ScenarioSettings};

/// The plan for `s`, or why Toxiproxy cannot run it (CPU pressure, say).
pub fn plan(s: &Scenario, settings: &ScenarioSettings) -> Result<Plan, String> {
    let t = toxiproxy::plan(s, &BTreeMap::new(), settings)?;
    let target = s.target.key();
    let mut watch = vec![target.clone()];
    let h = &s.hypothesis;
    let keys = s
        .signals
        .iter()
        .map(|w| w.key.clone())
        .chain(h.boundaries.iter().cloned())
        .chain(h.path.iter().cloned())
        .chain(h.queues.iter().cloned());
    for key in keys {
        if !watch.contains(&key) {
            watch.push(key);
        }
    }
    let toxics = t
        .toxics
        .iter()
        .map(|x| serde_json::to_value(x).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let entry = format!("edge:user->{}", s.guardrails.entry.name);
    Ok(Plan {
        scenario_id: s.id.clone(),
        title: s.title.clone(),
        target,
        watch,
        proxy: t.proxy.name,
        toxics,
        disable_proxy: t.proxy_update.is_some(),
        duration: Duration::from_secs(s.duration_s.max(1)),
        guardrails: Guardrails {
            key: Some(entry),
            max_error_rate: Some(s.guardrails.max_error_rate),
            max_p99_ms: Some(s.guardrails.max_p99_ms),
        },
        hypothesis: Hypothesis {
            max_error_rate: None,
            max_p99_ms: h.max_path_p99_ms,
            max_retry_amplification: h.max_retry_amplification,
            steady: h
                .boundaries
                .iter()
                .map(|b| format!("{b}/error_rate"))
                .collect(),
            recover_within: Duration::from_secs(h.recover_within_s.max(1)),
        },
    })
}
