//! The graph as scenario generation reads it.
//!
//! Rules read the `/api/graph` JSON contract, not the in-process
//! [`GraphView`]: a [`GraphView`] is turned into that JSON and back, so
//! `faultline scenarios FILE…` and `--server URL` (which only has the JSON)
//! go through one code path and cannot drift apart. Fields missing from an
//! older server default to zero.

use serde::{Deserialize, Deserializer};

use crate::graph::partial::{EdgeKind, NodeKind};
use crate::graph::GraphView;
use crate::operators::Target;

/// A `null` (or absent) number reads as 0.
fn num<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(0.0))
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Lat {
    #[serde(default, deserialize_with = "num")]
    pub mean: f64,
    #[serde(default, deserialize_with = "num")]
    pub p50: f64,
    #[serde(default, deserialize_with = "num")]
    pub p99: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeDoc {
    pub id: String,
    pub kind: NodeKind,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub calls: u64,
    #[serde(default, deserialize_with = "num")]
    pub error_rate: f64,
    #[serde(default)]
    pub latency_ms: Option<Lat>,
    #[serde(default)]
    pub k8s_namespace: Option<String>,
    #[serde(default)]
    pub k8s_deployment: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EdgeDoc {
    pub source: String,
    pub target: String,
    pub kind: EdgeKind,
    #[serde(default)]
    pub calls: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default, deserialize_with = "num")]
    pub error_rate: f64,
    #[serde(default)]
    pub timeouts: u64,
    #[serde(default)]
    pub attempts: u64,
    #[serde(default)]
    pub retries: u64,
    #[serde(default)]
    pub latency_ms: Option<Lat>,
    #[serde(default)]
    pub server_latency_ms: Option<Lat>,
    #[serde(default)]
    pub queue_latency_ms: Option<Lat>,
}

impl EdgeDoc {
    pub fn key(&self) -> String {
        format!("edge:{}->{}", self.source, self.target)
    }

    pub fn target_ref(&self) -> Target {
        Target::edge(&self.source, &self.target, self.kind)
    }

    pub fn p50(&self) -> f64 {
        self.latency_ms.map_or(0.0, |l| l.p50)
    }

    pub fn p99(&self) -> f64 {
        self.latency_ms.map_or(0.0, |l| l.p99)
    }

    /// Attempts per logical call (1 when no retries were seen).
    pub fn amplification(&self) -> f64 {
        let logical = self.attempts.saturating_sub(self.retries);
        if logical == 0 {
            1.0
        } else {
            self.attempts as f64 / logical as f64
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct HopDoc {
    pub source: String,
    pub target: String,
    #[serde(default, deserialize_with = "num")]
    pub share: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PathDoc {
    pub nodes: Vec<String>,
    #[serde(default)]
    pub traces: u64,
    #[serde(default)]
    pub latency_ms: Option<Lat>,
    #[serde(default)]
    pub hops: Vec<HopDoc>,
    #[serde(default)]
    pub critical_edge: Option<HopDoc>,
}

impl PathDoc {
    pub fn key(&self) -> String {
        format!("path:{}", self.nodes.join(">"))
    }

    pub fn p99(&self) -> f64 {
        self.latency_ms.map_or(0.0, |l| l.p99)
    }

    pub fn crosses(&self, source: &str, target: &str) -> bool {
        self.hops
            .iter()
            .any(|h| h.source == source && h.target == target)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DestinationDoc {
    pub name: String,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub produced: u64,
    #[serde(default)]
    pub consumed: u64,
    #[serde(default)]
    pub in_flight: u64,
    #[serde(default)]
    pub lag_ms: Option<Lat>,
    #[serde(default)]
    pub out_of_order: u64,
}

impl DestinationDoc {
    pub fn key(&self) -> String {
        format!("destination:{}", self.name)
    }

    pub fn lag_mean(&self) -> f64 {
        self.lag_ms.map_or(0.0, |l| l.mean)
    }
}

/// The parts of `GET /api/graph` the rules read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GraphDoc {
    #[serde(default)]
    pub nodes: Vec<NodeDoc>,
    #[serde(default)]
    pub edges: Vec<EdgeDoc>,
    #[serde(default)]
    pub paths: Vec<PathDoc>,
    #[serde(default)]
    pub destinations: Vec<DestinationDoc>,
}

impl GraphDoc {
    /// The view through its JSON form (see the module comment), one node,
    /// edge, path or destination at a time. A `serde_json::Value` tree of
    /// a view with 10^5 edges took about 250 MiB (a map per edge and per
    /// latency), and the whole view as text still 64 MiB at once.
    pub fn from_view(view: &GraphView) -> Result<GraphDoc, serde_json::Error> {
        Ok(GraphDoc {
            nodes: through_json(&view.nodes)?,
            edges: through_json(&view.edges)?,
            paths: through_json(&view.paths)?,
            destinations: through_json(&view.destinations)?,
        })
    }
}

/// Each item serialized and read back as `D`, one at a time.
fn through_json<T: serde::Serialize, D: serde::de::DeserializeOwned>(
    items: &[T],
) -> Result<Vec<D>, serde_json::Error> {
    let mut text = Vec::new();
    items
        .iter()
        .map(|item| {
            text.clear();
            serde_json::to_writer(&mut text, item)?;
            serde_json::from_slice(&text)
        })
        .collect()
}
