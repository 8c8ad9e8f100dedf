//! Recording read traces into a window, and the views of what was recorded.
//!
//! A window keys paths and clusters by name, so every trace's facts (in
//! [`Sym`]s) need their names back. Traces repeat the same few shapes, so
//! the [`Recorder`] remembers the name list of each path and the signature
//! of each edge set it has built, rather than building them per trace.

use hashbrown::HashMap;
use std::sync::Arc;

use super::read::{TraceEdge, TraceFacts};
use crate::graph::partial::{find_hashed_within, name_hash, FastMap, PathKey};
use crate::graph::stats::{ClusterStats, PathStats};
use crate::graph::symbols::{Sym, Symbols};
use crate::graph::view::{rate, ClusterView, HopView, PathView};

/// Shapes remembered; past this the memory starts over (a graph with more
/// distinct paths than this pays an allocation per trace, not unbounded memory).
const REMEMBERED: usize = 8_192;

/// A cluster as windows key it: its signature and its edges' names.
#[derive(Clone)]
struct Cluster {
    signature: u64,
    edges: Arc<[Arc<str>]>,
}

#[derive(Default)]
pub struct Recorder {
    /// Each path's key and its [`name_hash`]: hashing a key hashes every
    /// name on it, and every trace's paths are looked up in a window.
    paths: HashMap<Box<[Sym]>, (PathKey, u64), ahash::RandomState>,
    clusters: HashMap<Box<[TraceEdge]>, Cluster, ahash::RandomState>,
    /// Attempts and retries per edge of the traces read since the last
    /// [`Recorder::drain_attempts`]. Summed here by symbol, and added to
    /// the window once per edge: adding each trace's edges to the window
    /// took two name lookups, the edge's admission check and a window
    /// lookup per edge of every trace.
    attempts: HashMap<TraceEdge, (u64, u64), foldhash::fast::RandomState>,
    drained: Vec<(TraceEdge, u64, u64)>,
}

impl Recorder {
    /// Counts a trace's attempts and retries per edge, for
    /// [`Recorder::drain_attempts`].
    pub fn attempts(&mut self, facts: &TraceFacts) {
        for &(edge, attempts, retries) in &facts.attempts {
            let counts = self.attempts.entry(edge).or_default();
            counts.0 += attempts;
            counts.1 += retries;
        }
    }

    /// The attempts and retries counted since the last call, one entry per
    /// edge, in symbol order (so edges are admitted in the same order on
    /// every run).
    pub fn drain_attempts(&mut self) -> &[(TraceEdge, u64, u64)] {
        self.drained.clear();
        let counted = self.attempts.drain().map(|(e, (a, r))| (e, a, r));
        self.drained.extend(counted);
        self.drained.sort_unstable_by_key(|&(e, _, _)| e);
        &self.drained
    }

    /// Records a trace's paths into a window's path table (bounded).
    pub fn paths(
        &mut self,
        paths: &mut FastMap<PathKey, PathStats>,
        facts: &TraceFacts,
        names: &Symbols,
        max_paths: usize,
    ) {
        for p in &facts.paths {
            let (key, hash) = self.path_key(facts.nodes(p), names);
            let Some(stats) = find_hashed_within(paths, key, *hash, max_paths, PathStats::default)
            else {
                continue;
            };
            stats.traces += 1;
            stats.errors += u64::from(p.failed);
            stats.latency.record(facts.root_ns);
            let shares = facts.shares(p);
            if stats.share_sums.len() < shares.len() {
                stats.share_sums.resize(shares.len(), 0.0);
            }
            for (sum, share) in stats.share_sums.iter_mut().zip(shares) {
                *sum += share;
            }
        }
    }

    /// Records a trace into its cluster (bounded).
    pub fn cluster(
        &mut self,
        clusters: &mut FastMap<u64, ClusterStats>,
        facts: &TraceFacts,
        names: &Symbols,
        max_clusters: usize,
    ) {
        if facts.edges.is_empty() {
            return;
        }
        let cluster = self.cluster_of(&facts.edges, names);
        if !clusters.contains_key(&cluster.signature) && clusters.len() >= max_clusters {
            return;
        }
        let c = clusters.entry(cluster.signature).or_default();
        if c.edges.is_empty() {
            c.edges = cluster.edges.clone();
        }
        c.traces += 1;
        c.errors += u64::from(facts.failed);
        c.latency.record(facts.root_ns);
    }

    fn path_key(&mut self, nodes: &[Sym], names: &Symbols) -> &(PathKey, u64) {
        if self.paths.len() >= REMEMBERED && !self.paths.contains_key(nodes) {
            self.paths.clear();
        }
        self.paths.entry_ref(nodes).or_insert_with(|| {
            let key: PathKey = nodes.iter().map(|&n| names.name(n).clone()).collect();
            let hash = name_hash(&key);
            (key, hash)
        })
    }

    fn cluster_of(&mut self, edges: &[TraceEdge], names: &Symbols) -> &Cluster {
        if self.clusters.len() >= REMEMBERED && !self.clusters.contains_key(edges) {
            self.clusters.clear();
        }
        self.clusters
            .entry_ref(edges)
            .or_insert_with(|| new_cluster(edges, names))
    }
}

/// A cluster's signature: FNV-1a over its edges sorted by name, so it is
/// the same across shards, processes and restarts (symbols are not).
fn new_cluster(edges: &[TraceEdge], names: &Symbols) -> Cluster {
    let mut named: Vec<(&str, &str, TraceEdge)> = edges
        .iter()
        .map(|e| (&**names.name(e.source), &**names.name(e.target), *e))
        .collect();
    named.sort_by(|a, b| (a.0, a.1, a.2.kind).cmp(&(b.0, b.1, b.2.kind)));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (source, target, _) in &named {
        for part in [source.as_bytes(), b"->", target.as_bytes(), b";"] {
            for byte in part {
                h ^= u64::from(*byte);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    Cluster {
        signature: h,
        edges: named
            .iter()
            .map(|(s, t, _)| Arc::from(format!("{s}->{t}")))
            .collect(),
    }
}

pub fn path_views(paths: &FastMap<PathKey, PathStats>) -> Vec<PathView> {
    let mut out: Vec<PathView> = paths
        .iter()
        .map(|(nodes, s)| {
            let hops: Vec<HopView> = nodes
                .windows(2)
                .zip(&s.share_sums)
                .map(|(w, sum)| HopView {
                    source: w[0].to_string(),
                    target: w[1].to_string(),
                    // Rounded: float sums depend on merge order, the view must not.
                    share: (sum / s.traces.max(1) as f64 * 1e6).round() / 1e6,
                })
                .collect();
            let critical_edge = hops
                .iter()
                .max_by(|a, b| a.share.total_cmp(&b.share))
                .cloned();
            PathView {
                nodes: nodes.iter().map(|n| n.to_string()).collect(),
                traces: s.traces,
                errors: s.errors,
                error_rate: rate(s.errors, s.traces),
                latency_ms: s.latency.summary(),
                hops,
                critical_edge,
            }
        })
        .collect();
    out.sort_by(|a, b| b.traces.cmp(&a.traces).then_with(|| a.nodes.cmp(&b.nodes)));
    out
}

pub fn cluster_views(clusters: &FastMap<u64, ClusterStats>) -> Vec<ClusterView> {
    let mut out: Vec<ClusterView> = clusters
        .iter()
        .map(|(sig, c)| ClusterView {
            signature: format!("{sig:016x}"),
            edges: c.edges.iter().map(|e| e.to_string()).collect(),
            traces: c.traces,
            errors: c.errors,
            error_rate: rate(c.errors, c.traces),
            latency_ms: c.latency.summary(),
        })
        .collect();
    out.sort_by(|a, b| {
        b.traces
            .cmp(&a.traces)
            .then_with(|| a.signature.cmp(&b.signature))
    });
    out
}
