//! `faultline scenarios`: failure scenarios from a running faultline or
//! from exported span files, rendered for the chaos tool of choice.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::analyze;
use crate::graph::GraphSettings;
use crate::operators::{offline_hotspots, Feedback, Hotspot, OperatorSettings};
use crate::scenarios::render::{self, Format, Rendered};
use crate::scenarios::{generate_from_doc_with_llm, GraphDoc, LlmReport, ScenarioSettings};

/// Where the graph comes from.
pub enum Input {
    /// A running faultline's API base URL (`http://127.0.0.1:8080`).
    Server(String),
    /// Exported span files, imported as `faultline analyze` does.
    Files(Vec<PathBuf>),
}

pub struct Options {
    pub input: Input,
    pub format: Format,
    pub out: Option<PathBuf>,
    pub settings: ScenarioSettings,
    pub graph: GraphSettings,
}

/// What the command produced: the text for stdout (when no `--out`) and
/// a summary for stderr.
pub struct Outcome {
    pub stdout: String,
    pub summary: String,
}

/// Reads a settings file shaped like `processors.scenarios`.
pub fn load_settings(path: Option<&Path>) -> anyhow::Result<ScenarioSettings> {
    let Some(path) = path else {
        return Ok(ScenarioSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("{}: at `{}`: {}", path.display(), e.path(), e.inner()))
}

pub async fn run(o: Options) -> anyhow::Result<Outcome> {
    let (doc, hotspots) = match &o.input {
        Input::Server(url) => fetch(url).await?,
        Input::Files(files) => import(files, o.graph.clone())?,
    };
    let generated = generate_from_doc_with_llm(&doc, &hotspots, &[], &o.settings).await;
    let rendered = render::render(o.format, &generated.scenarios, &o.settings)?;
    let mut summary = summary(generated.scenarios.len(), &generated.llm, &rendered);
    let stdout = match &o.out {
        Some(dir) => {
            write(dir, &rendered)?;
            summary += &format!(
                "\n{} file(s) written under {}",
                rendered.files.len(),
                dir.display()
            );
            String::new()
        }
        None => rendered.to_stream(o.format)?,
    };
    Ok(Outcome { stdout, summary })
}

#[derive(Deserialize)]
struct HotspotsDoc {
    hotspots: Vec<Hotspot>,
}

/// GET a body; `None` for a 404 (an older faultline without the route).
async fn get(url: &str) -> anyhow::Result<Option<bytes::Bytes>> {
    let response = reqwest::get(url)
        .await
        .with_context(|| format!("GET {url} failed: is `faultline serve` running there?"))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    anyhow::ensure!(status.is_success(), "GET {url}: HTTP {status}");
    let body = response
        .bytes()
        .await
        .with_context(|| format!("GET {url}: reading the body"))?;
    Ok(Some(body))
}

/// The graph and hotspots of a running faultline. A server without
/// `/api/hotspots` still gives scenarios, from the graph alone.
async fn fetch(base: &str) -> anyhow::Result<(GraphDoc, Vec<Hotspot>)> {
    let base = base.trim_end_matches('/');
    let url = format!("{base}/api/graph");
    let body = get(&url)
        .await?
        .with_context(|| format!("GET {url}: HTTP 404"))?;
    let graph: GraphDoc =
        serde_json::from_slice(&body).context("/api/graph is not a graph document")?;
    let hotspots = match get(&format!("{base}/api/hotspots")).await? {
        Some(body) => {
            let doc: HotspotsDoc = serde_json::from_slice(&body)
                .context("/api/hotspots is not a hotspots document")?;
            doc.hotspots
        }
        None => {
            tracing::warn!("{base} has no /api/hotspots; ranking on the graph alone");
            Vec::new()
        }
    };
    Ok((graph, hotspots))
}

fn import(files: &[PathBuf], graph: GraphSettings) -> anyhow::Result<(GraphDoc, Vec<Hotspot>)> {
    let analysis = analyze::analyze(files, graph)?;
    let view = analysis.graph;
    let hotspots = offline_hotspots(&view, &OperatorSettings::default(), &Feedback::default());
    let doc = GraphDoc::from_view(&view).context("graph view does not read back as JSON")?;
    Ok((doc, hotspots))
}

fn summary(count: usize, llm: &LlmReport, rendered: &Rendered) -> String {
    let mut text = format!("{count} scenario(s)");
    match llm {
        LlmReport::Disabled => {}
        LlmReport::Merged { accepted, rejected } => {
            text += &format!("; LLM: {accepted} accepted, {} rejected", rejected.len());
            for r in rejected {
                text += &format!("\n  LLM proposal {} rejected: {}", r.index, r.reason);
            }
        }
        LlmReport::FellBack { reason } => {
            text += &format!("; LLM unavailable, rules only: {reason}")
        }
    }
    for s in &rendered.skipped {
        text += &format!("\n  scenario {} not rendered: {}", s.id, s.reason);
    }
    text
}

fn write(dir: &Path, rendered: &Rendered) -> anyhow::Result<()> {
    for f in &rendered.files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        std::fs::write(&path, &f.content)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}
