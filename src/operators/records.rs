//! The records operators publish: signals, anomalies, hotspots, paths.
//!
//! These are a public contract — the API, the JSON lines files and the Kafka
//! topics carry them as they serialize here, and `docs/records.md` documents
//! them. Add fields, never rename them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::graph::partial::EdgeKind;

/// What a record is about. Its [`Target::key`] is the Kafka message key, so
/// a consumer sees all records of one target in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// One service boundary: calls from `source` to `target`.
    Edge {
        source: String,
        target: String,
        kind: EdgeKind,
    },
    /// A root-to-leaf chain of nodes seen in traces (`gateway > orders > redis`).
    Path { nodes: Vec<String> },
    /// A messaging destination (topic or queue), named as its virtual node.
    Destination { name: String },
    /// Traces that cross the same set of edges; `signature` is a stable hash.
    Cluster {
        signature: String,
        edges: Vec<String>,
    },
}

impl Target {
    /// The stable key: `edge:a->b`, `path:a>b>c`, `destination:orders`,
    /// `cluster:<signature>`.
    pub fn key(&self) -> String {
        match self {
            Target::Edge { source, target, .. } => format!("edge:{source}->{target}"),
            Target::Path { nodes } => format!("path:{}", nodes.join(">")),
            Target::Destination { name } => format!("destination:{name}"),
            Target::Cluster { signature, .. } => format!("cluster:{signature}"),
        }
    }

    pub fn edge(source: &str, target: &str, kind: EdgeKind) -> Target {
        Target::Edge {
            source: source.to_owned(),
            target: target.to_owned(),
            kind,
        }
    }
}

/// A target's baseline for one signal, over its own recent windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub median: f64,
    /// Median absolute deviation (unscaled).
    pub mad: f64,
    pub ewma: f64,
    /// How many past windows the baseline was computed over.
    pub windows: usize,
}

/// One signal of one target in one evaluated window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub value: f64,
    /// `None` until enough windows have been seen. Boxed: most signals at
    /// 10^5 edges have none, and inline it doubled every signal's size.
    pub baseline: Option<Box<Baseline>>,
    /// Robust z-score against the baseline (`None` without one).
    pub z: Option<f64>,
    /// Whether the value is within tolerance of its baseline (true when
    /// there is no baseline yet, or too few calls to judge).
    pub within_tolerance: bool,
}

/// Every signal of one target in one evaluated window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// Increases by one per record on this stream, per process: a gap in
    /// the sequence a consumer reads means a lost record.
    pub seq: u64,
    pub key: String,
    pub target: Target,
    /// The evaluated window: `[window_start_ms, window_end_ms)`.
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    /// Calls (edges), traces (paths, clusters) or messages (destinations).
    pub calls: u64,
    /// Signal name → value. Names: see [`SignalName`].
    pub signals: Signals,
}

/// Signal name → value, in name order; JSON: an object, as a map's.
///
/// A short sorted list rather than a `BTreeMap`: a record holds five or so
/// signals, and a map's first node has room for eleven, about 900 bytes
/// per record. At 10^5 edges the records the API keeps for `?since=` (three
/// windows of tens of thousands) were 200 MiB, most of it empty slots.
/// Names are shared statics (an allocation per signal was another 160
/// bytes a record); only an unknown name read back from JSON owns its text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals(Vec<(Cow<'static, str>, Signal)>);

impl Signals {
    pub fn get(&self, name: &str) -> Option<&Signal> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    /// Sets `name`'s signal, replacing one of the same name.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, signal: Signal) {
        let name = name.into();
        match self.find(&name) {
            Ok(i) => self.0[i].1 = signal,
            Err(i) => self.0.insert(i, (name, signal)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Signal)> {
        self.into_iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_ref().cmp(name))
    }
}

impl<'a> IntoIterator for &'a Signals {
    type Item = (&'a str, &'a Signal);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Cow<'static, str>, Signal)>,
        fn(&'a (Cow<'static, str>, Signal)) -> (&'a str, &'a Signal),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, signal)| (name.as_ref(), signal))
    }
}

impl<N: Into<Cow<'static, str>>> FromIterator<(N, Signal)> for Signals {
    fn from_iter<I: IntoIterator<Item = (N, Signal)>>(items: I) -> Signals {
        let mut list: Vec<(Cow<'static, str>, Signal)> =
            items.into_iter().map(|(n, s)| (n.into(), s)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        // The last of equal names wins, as in a map.
        list.reverse();
        list.dedup_by(|later, earlier| later.0 == earlier.0);
        list.reverse();
        list.shrink_to_fit();
        Signals(list)
    }
}

impl Serialize for Signals {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Signals {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Signals, D::Error> {
        let map = BTreeMap::<String, Signal>::deserialize(deserializer)?;
        Ok(map
            .into_iter()
            .map(|(name, s)| (SignalName::shared(name), s))
            .collect())
    }
}

/// The signal names, as they appear in [`SignalRecord::signals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalName {
    ErrorRate,
    TimeoutRate,
    P99Ms,
    Retries,
    RetryAmplification,
    QueueDepth,
    QueueLagMs,
    OutOfOrder,
}

impl SignalName {
    pub const ALL: [SignalName; 8] = [
        SignalName::ErrorRate,
        SignalName::TimeoutRate,
        SignalName::P99Ms,
        SignalName::Retries,
        SignalName::RetryAmplification,
        SignalName::QueueDepth,
        SignalName::QueueLagMs,
        SignalName::OutOfOrder,
    ];

    /// `name` as a shared static when it is a known signal's, else owned.
    pub fn shared(name: String) -> Cow<'static, str> {
        match SignalName::ALL.iter().find(|n| n.as_str() == name) {
            Some(n) => Cow::Borrowed(n.as_str()),
            None => Cow::Owned(name),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignalName::ErrorRate => "error_rate",
            SignalName::TimeoutRate => "timeout_rate",
            SignalName::P99Ms => "p99_ms",
            SignalName::Retries => "retries",
            SignalName::RetryAmplification => "retry_amplification",
            SignalName::QueueDepth => "queue_depth",
            SignalName::QueueLagMs => "queue_lag_ms",
            SignalName::OutOfOrder => "out_of_order",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyState {
    Start,
    End,
}

/// An anomaly starting or ending. Start and end share the `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEvent {
    pub seq: u64,
    /// `<target key>/<signal>/<start ms>`.
    pub id: String,
    pub state: AnomalyState,
    pub key: String,
    pub target: Target,
    /// A [`SignalName`], or `new_signature` for a never-seen path cluster.
    pub signal: String,
    pub value: f64,
    pub baseline: Option<Baseline>,
    pub z: Option<f64>,
    pub started_ms: u64,
    /// Set on `end` events.
    pub ended_ms: Option<u64>,
    /// In words, for people: what departed from what.
    pub reason: String,
}

/// One part of a hotspot's score, so a user sees why it ranks where it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreComponent {
    /// `error_rate`, `p99_vs_baseline`, `tail_latency`, `timeouts`,
    /// `retry_amplification`, `queue_lag`, `fan_out`, `anomalies`.
    pub name: String,
    /// The observed value the points come from.
    pub value: f64,
    /// The points this component adds to the score (before feedback).
    pub points: f64,
    pub why: String,
}

/// A ranked place to cut first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hotspot {
    pub seq: u64,
    /// 1 is the riskiest.
    pub rank: usize,
    pub key: String,
    pub target: Target,
    /// Sum of component points times the target factor and the feedback weight.
    pub score: f64,
    pub components: Vec<ScoreComponent>,
    /// 1 for edges and destinations; `weights.path_factor` for paths.
    pub target_factor: f64,
    /// The stored per-target weight experiments raise (default 1).
    pub feedback_weight: f64,
    /// Ids of anomalies active on this target.
    pub anomalies: Vec<String>,
    /// The latest values of the target's signals.
    pub signals: BTreeMap<String, f64>,
    pub at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(value: f64) -> Signal {
        Signal {
            value,
            baseline: None,
            z: None,
            within_tolerance: true,
        }
    }

    #[test]
    fn signals_read_and_write_as_a_map_in_name_order() {
        let mut s: Signals = [("p99_ms", 3.0), ("error_rate", 0.5), ("p99_ms", 4.0)]
            .into_iter()
            .map(|(n, v)| (n, signal(v)))
            .collect();
        assert_eq!(s.len(), 2, "the last of equal names wins");
        assert_eq!(s.get("p99_ms").map(|x| x.value), Some(4.0));
        s.insert("retries", signal(1.0));
        s.insert("error_rate".to_owned(), signal(0.25));
        let names: Vec<&str> = s.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["error_rate", "p99_ms", "retries"]);
        assert_eq!(s.get("error_rate").map(|x| x.value), Some(0.25));
        assert!(s.get("queue_depth").is_none());

        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["p99_ms"]["value"], 4.0);
        assert_eq!(json.as_object().unwrap().len(), 3);
        let back: Signals = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        assert!(
            back.0.iter().all(|(n, _)| matches!(n, Cow::Borrowed(_))),
            "known names read back as shared statics"
        );
    }
}
