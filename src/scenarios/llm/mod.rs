//! The optional LLM generator: any OpenAI-compatible chat-completions
//! endpoint (OpenAI, vLLM, Ollama, llama.cpp's server, …).
//!
//! The model sees the graph summary, the hotspots and the error patterns
//! ([`prompt`]) and answers with scenarios in a small JSON schema. Nothing
//! it says is trusted: each proposal must name a known edge or destination
//! and a known fault kind with valid parameters, or it is rejected with the
//! reason logged. Accepted proposals go through the same builder as the
//! rules' (so hypotheses, guardrails and evidence are computed by faultline,
//! not by the model). Any failure of the call itself falls back to rules.

pub mod prompt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::build::{build, Candidate};
use super::facts::Facts;
use super::model::{Fault, FaultKind, FaultParams, Scenario, Source};
use super::settings::{LlmSettings, ScenarioSettings};
use crate::operators::Target;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM request to {url} timed out after {timeout:?}")]
    Timeout {
        url: String,
        timeout: std::time::Duration,
    },
    #[error("LLM request to {url} failed: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("LLM endpoint {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("LLM answer is not usable: {0}")]
    Malformed(String),
}

/// One proposal the model made that faultline refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// Its position in the model's list, from 0.
    pub index: usize,
    pub reason: String,
}

/// The model's scenarios, read but not yet checked against the graph.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    pub items: Vec<Value>,
}

/// Asks the model; errors mean "use the rules alone".
pub async fn propose(facts: &Facts<'_>, s: &LlmSettings) -> Result<Proposal, LlmError> {
    let url = s.endpoint();
    let body = json!({
        "model": s.model,
        "temperature": 0,
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": prompt::SYSTEM},
            {"role": "user", "content": prompt::user(facts, s.scenarios)},
        ],
    });
    let client = reqwest::Client::builder()
        .timeout(s.timeout)
        .build()
        .map_err(|source| LlmError::Request {
            url: url.clone(),
            source,
        })?;
    let mut request = client.post(&url).json(&body);
    if let Some(key) = s.key() {
        request = request.bearer_auth(key);
    }
    let failed = |source: reqwest::Error| {
        if source.is_timeout() {
            LlmError::Timeout {
                url: url.clone(),
                timeout: s.timeout,
            }
        } else {
            LlmError::Request {
                url: url.clone(),
                source,
            }
        }
    };
    let response = request.send().await.map_err(failed)?;
    let status = response.status();
    let text = response.text().await.map_err(failed)?;
    if !status.is_success() {
        return Err(LlmError::Status {
            url,
            status: status.as_u16(),
            body: text.chars().take(300).collect(),
        });
    }
    parse_answer(&text)
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

/// Reads the completion and the JSON inside its first message. Models
/// often wrap JSON in a Markdown fence even when told not to; that is
/// tolerated, anything else is malformed.
pub fn parse_answer(completion: &str) -> Result<Proposal, LlmError> {
    let c: Completion = serde_json::from_str(completion)
        .map_err(|e| LlmError::Malformed(format!("not a chat completion: {e}")))?;
    let content = c
        .choices
        .into_iter()
        .next()
        .and_then(|ch| ch.message.content)
        .ok_or_else(|| LlmError::Malformed("no message content".into()))?;
    let inner = strip_fence(&content);
    let doc: Value = serde_json::from_str(inner)
        .map_err(|e| LlmError::Malformed(format!("message is not JSON: {e}")))?;
    let items = match doc {
        Value::Object(mut o) => match o.remove("scenarios") {
            Some(Value::Array(items)) => items,
            _ => return Err(LlmError::Malformed("no \"scenarios\" array".into())),
        },
        Value::Array(items) => items,
        _ => return Err(LlmError::Malformed("neither an object nor an array".into())),
    };
    Ok(Proposal { items })
}

fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

/// What the model is asked to answer, per scenario.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proposed {
    #[serde(default)]
    title: Option<String>,
    target: ProposedTarget,
    fault: ProposedFault,
    #[serde(default)]
    rationale: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ProposedTarget {
    Edge { source: String, target: String },
    Destination { name: String },
    Path { nodes: Vec<String> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposedFault {
    kind: String,
    #[serde(default)]
    params: Value,
}

/// Checks each proposal against the graph and builds the accepted ones.
pub fn accept(p: Proposal, facts: &Facts<'_>) -> (Vec<Scenario>, Vec<Rejection>) {
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (index, item) in p.items.into_iter().enumerate() {
        match candidate(item, facts).and_then(|c| build(c, facts)) {
            Ok(s) => accepted.push(s),
            Err(reason) => {
                tracing::warn!(index, reason, "LLM scenario rejected");
                rejected.push(Rejection { index, reason });
            }
        }
    }
    (accepted, rejected)
}

fn candidate(item: Value, facts: &Facts<'_>) -> Result<Candidate, String> {
    let p: Proposed = serde_json::from_value(item).map_err(|e| format!("bad shape: {e}"))?;
    let kind: FaultKind = p.fault.kind.parse()?;
    let mut params: FaultParams = match p.fault.params {
        Value::Null => FaultParams::default(),
        v => serde_json::from_value(v).map_err(|e| format!("bad params for {kind}: {e}"))?,
    };
    fill_defaults(kind, &mut params, facts.settings);
    let target = match p.target {
        ProposedTarget::Edge { source, target } => {
            let edge_kind = facts
                .edge(&source, &target)
                .map(|e| e.kind)
                .ok_or_else(|| unknown_edge(facts, &source, &target))?;
            Target::edge(&source, &target, edge_kind)
        }
        ProposedTarget::Destination { name } => Target::Destination { name },
        ProposedTarget::Path { nodes } => Target::Path { nodes },
    };
    let points = facts.settings.llm.as_ref().map_or(0.0, |l| l.points);
    let title = p
        .title
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| format!("{kind} on {}", target.key()));
    let why = p.rationale.unwrap_or_else(|| "proposed by the LLM".into());
    let mut c = Candidate::new("llm", target, Fault { kind, params }, points)
        .title(title.chars().take(200).collect())
        .why(why.chars().take(500).collect());
    c.source = Source::Llm;
    Ok(c)
}

/// Names the first unknown node, else the missing edge.
fn unknown_edge(facts: &Facts<'_>, source: &str, target: &str) -> String {
    match [source, target]
        .into_iter()
        .find(|n| facts.node(n).is_none())
    {
        Some(n) => format!("unknown service {n:?}"),
        None => format!("unknown edge {source}->{target}"),
    }
}

/// Parameters a kind requires that the model left out take the rules'
/// defaults, so "add latency" without a number is still usable.
fn fill_defaults(kind: FaultKind, p: &mut FaultParams, s: &ScenarioSettings) {
    let (required, _) = kind.param_names();
    for name in required {
        match *name {
            "latency_ms" => {
                let default = if kind == FaultKind::SlowConsumer {
                    s.consumer_delay_ms
                } else {
                    s.latency_ms
                };
                p.latency_ms.get_or_insert(default);
            }
            "jitter_ms" => {
                p.jitter_ms.get_or_insert(s.latency_ms / 2);
            }
            "timeout_ms" => {
                p.timeout_ms.get_or_insert(s.hang_ms);
            }
            "error_percent" => {
                p.error_percent.get_or_insert(s.error_percent);
            }
            "loss_percent" => {
                p.loss_percent.get_or_insert(s.loss_percent);
            }
            "rate_kbps" => {
                p.rate_kbps.get_or_insert(s.bandwidth_kbps);
            }
            "reorder_percent" => {
                p.reorder_percent.get_or_insert(s.reorder_percent);
            }
            "cpu_load_percent" => {
                p.cpu_load_percent.get_or_insert(s.cpu_load_percent);
            }
            "cpu_workers" => {
                p.cpu_workers.get_or_insert(s.cpu_workers);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(content: &str) -> String {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
            .to_string()
    }

    #[test]
    fn reads_fenced_and_plain_answers() {
        let plain = parse_answer(&completion(r#"{"scenarios": [{"a": 1}]}"#)).unwrap();
        assert_eq!(plain.items.len(), 1);
        let fenced = parse_answer(&completion("```json\n[{\"a\": 1}, {\"b\": 2}]\n```")).unwrap();
        assert_eq!(fenced.items.len(), 2);
    }

    #[test]
    fn malformed_answers_are_errors() {
        for bad in [
            "not json at all".to_owned(),
            json!({"choices": []}).to_string(),
            completion("Sure! Here are some ideas: ..."),
            completion(r#"{"ideas": []}"#),
        ] {
            assert!(
                matches!(parse_answer(&bad), Err(LlmError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
