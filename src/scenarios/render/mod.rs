//! Renderers: scenarios as files the chaos tools run.
//!
//! Every renderer returns files (relative paths and contents) plus the
//! scenarios it could not express, each with the reason, so nothing is
//! dropped silently: not every tool has every fault (LitmusChaos's four
//! faults here have no bandwidth cap, Chaos Mesh has no TCP reset outside
//! HTTP, Toxiproxy cannot load a CPU).

pub mod chaos_mesh;
pub mod chaostoolkit;
pub mod k8s;
pub mod litmus;
pub mod toxiproxy;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::model::{Scenario, ScenarioSet};
use super::settings::ScenarioSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Toxiproxy,
    ChaosMesh,
    Litmus,
    ChaosToolkit,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Json,
        Format::Yaml,
        Format::Toxiproxy,
        Format::ChaosMesh,
        Format::Litmus,
        Format::ChaosToolkit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Toxiproxy => "toxiproxy",
            Format::ChaosMesh => "chaos-mesh",
            Format::Litmus => "litmus",
            Format::ChaosToolkit => "chaostoolkit",
        }
    }

    /// Whether the files are YAML (else JSON).
    pub fn is_yaml(self) -> bool {
        matches!(self, Format::Yaml | Format::ChaosMesh | Format::Litmus)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown format {s:?}"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    /// Relative to the output directory, e.g. `chaos-mesh/workflow.yaml`.
    pub path: String,
    pub content: String,
}

/// A scenario a renderer cannot express, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub files: Vec<RenderedFile>,
    pub skipped: Vec<Skipped>,
}

impl Rendered {
    pub(crate) fn file(&mut self, path: String, content: String) {
        self.files.push(RenderedFile { path, content });
    }

    pub(crate) fn skip(&mut self, s: &Scenario, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            id: s.id.clone(),
            reason: reason.into(),
        });
    }

    /// All files as one stream for stdout: the scenario document itself for
    /// `json`/`yaml`, else YAML documents separated by `---` with a
    /// `# path` comment, or one JSON object keyed by path.
    pub fn to_stream(&self, format: Format) -> Result<String, RenderError> {
        if matches!(format, Format::Json | Format::Yaml) {
            return Ok(self.files.iter().map(|f| f.content.as_str()).collect());
        }
        if format.is_yaml() {
            let docs: Vec<String> = self
                .files
                .iter()
                .map(|f| format!("# {}\n{}", f.path, f.content))
                .collect();
            return Ok(docs.join("---\n"));
        }
        let mut map = serde_json::Map::new();
        for f in &self.files {
            map.insert(f.path.clone(), serde_json::from_str(&f.content)?);
        }
        Ok(serde_json::to_string_pretty(&map)? + "\n")
    }
}

/// Renders `scenarios` (in rank order) for `format`.
pub fn render(
    format: Format,
    scenarios: &[Scenario],
    settings: &ScenarioSettings,
) -> Result<Rendered, RenderError> {
    let set = ScenarioSet {
        scenarios: scenarios.to_vec(),
    };
    let mut out = Rendered::default();
    match format {
        Format::Json => out.file(
            "scenarios.json".into(),
            serde_json::to_string_pretty(&set)? + "\n",
        ),
        Format::Yaml => out.file("scenarios.yaml".into(), serde_yaml_ng::to_string(&set)?),
        Format::Toxiproxy => toxiproxy::render(scenarios, settings, &mut out)?,
        Format::ChaosMesh => chaos_mesh::render(scenarios, settings, &mut out)?,
        Format::Litmus => litmus::render(scenarios, settings, &mut out)?,
        Format::ChaosToolkit => chaostoolkit::render(scenarios, settings, &mut out)?,
    }
    Ok(out)
}

/// Pretty JSON with a final newline.
pub(crate) fn json(value: &impl Serialize) -> Result<String, RenderError> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// YAML of several documents, `---` between them.
pub(crate) fn yaml_docs(values: &[serde_json::Value]) -> Result<String, RenderError> {
    let docs: Result<Vec<String>, _> = values.iter().map(serde_yaml_ng::to_string).collect();
    Ok(docs?.join("---\n"))
}
