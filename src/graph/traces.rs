//! Trace assembly: a trace's spans are gathered until it goes quiet, then
//! read as a whole for what no single pair of spans shows — the paths a
//! request took, the set of edges it crossed (its cluster) and retries.
//!
//! Shards own their assembler, and spans are routed by trace id, so a trace
//! is always whole in one shard. Only a compact record of each span is kept
//! (ids, times, interned names), and the number of open traces is capped;
//! traces past the cap are counted, not assembled.

use std::collections::HashMap;
use std::sync::Arc;

use super::naming::PeerNode;
use super::partial::{EdgeKind, FastMap, NodeKind, PathKey};
use super::stats::{ClusterStats, PathStats};
use super::view::{rate, ClusterView, HopView, PathView};
use crate::model::{SpanId, SpanKind, TraceId};

/// Knobs of trace assembly (`processors.graph.traces`).
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// A trace is read once no span arrived for it for this long.
    pub idle_ms: u64,
    /// Open traces per shard; spans of further traces are not assembled.
    pub max_traces: usize,
    /// Spans kept per trace; later ones are ignored for assembly.
    pub max_spans: usize,
    /// Two sibling calls to the same peer and operation, the first failed,
    /// the second starting within this gap after it ended: a retry.
    pub retry_gap_ns: u64,
    /// Distinct paths and clusters kept per window and shard.
    pub max_paths: usize,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            idle_ms: 2_000,
            max_traces: 100_000,
            max_spans: 1_000,
            retry_gap_ns: 1_000_000_000,
            max_paths: 1_000,
        }
    }
}

/// What the assembler keeps of one span.
#[derive(Debug, Clone)]
pub struct SpanRec {
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub service: Arc<str>,
    pub kind: SpanKind,
    pub start: u64,
    pub end: u64,
    pub failed: bool,
    pub name: Arc<str>,
    /// `http.request.resend_count`, where the instrumentation sets it.
    pub resend: Option<i64>,
    /// For CLIENT/PRODUCER spans: the database or named peer.
    pub peer: Option<PeerNode>,
}

struct TraceBuf {
    spans: Vec<SpanRec>,
    last_ms: u64,
}

/// Open traces of one shard.
pub struct TraceAssembler {
    settings: TraceSettings,
    open: HashMap<TraceId, TraceBuf, ahash::RandomState>,
    /// Spans not assembled because `max_traces` traces were open (each span
    /// of a trace that found no room counts once; exported as
    /// `faultline_trace_assembly_skipped_spans`).
    pub skipped: u64,
}

impl TraceAssembler {
    pub fn new(settings: TraceSettings) -> TraceAssembler {
        TraceAssembler {
            settings,
            open: HashMap::default(),
            skipped: 0,
        }
    }

    pub fn settings(&self) -> &TraceSettings {
        &self.settings
    }

    pub fn add(&mut self, trace: TraceId, span: SpanRec, now_ms: u64) {
        let full = self.open.len() >= self.settings.max_traces;
        let buf = match self.open.get_mut(&trace) {
            Some(buf) => buf,
            None if full => {
                self.skipped += 1;
                return;
            }
            None => self.open.entry(trace).or_insert(TraceBuf {
                spans: Vec::new(),
                last_ms: now_ms,
            }),
        };
        buf.last_ms = now_ms;
        if buf.spans.len() < self.settings.max_spans {
            buf.spans.push(span);
        }
    }

    /// Traces quiet for `idle_ms`, read and removed.
    pub fn expire(&mut self, now_ms: u64) -> Vec<TraceFacts> {
        let idle = self.settings.idle_ms;
        self.drain(|b| b.last_ms + idle <= now_ms)
    }

    /// Every open trace, read and removed (end of an offline import).
    pub fn expire_all(&mut self) -> Vec<TraceFacts> {
        self.drain(|_| true)
    }

    fn drain(&mut self, done: impl Fn(&TraceBuf) -> bool) -> Vec<TraceFacts> {
        let gap = self.settings.retry_gap_ns;
        self.open
            .extract_if(|_, b| done(b))
            .map(|(_, b)| TraceFacts::read(&b.spans, gap))
            .collect()
    }
}

/// One edge as a trace shows it (names as the graph names nodes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceEdge {
    pub source: Arc<str>,
    pub target: Arc<str>,
    pub kind: EdgeKind,
}

/// A path as one trace followed it.
#[derive(Debug, Clone)]
pub struct PathFact {
    pub nodes: PathKey,
    pub failed: bool,
    /// Per hop, its exclusive share of the root's duration.
    pub shares: Vec<f64>,
}

/// What one assembled trace tells.
#[derive(Debug, Clone, Default)]
pub struct TraceFacts {
    pub root_ns: u64,
    pub failed: bool,
    pub paths: Vec<PathFact>,
    /// Distinct edges crossed, sorted: the cluster signature's input.
    pub edges: Vec<TraceEdge>,
    /// Per edge: (attempts, retries).
    pub attempts: Vec<(TraceEdge, u64, u64)>,
}

/// Paths emitted per trace at most, and the deepest chain followed.
const MAX_PATHS_PER_TRACE: usize = 64;
const MAX_DEPTH: usize = 32;

impl TraceFacts {
    pub fn read(spans: &[SpanRec], retry_gap_ns: u64) -> TraceFacts {
        let tree = Tree::new(spans);
        let Some(root) = tree.root() else {
            return TraceFacts::default();
        };
        let root_ns = spans[root].end.saturating_sub(spans[root].start);
        let mut facts = TraceFacts {
            root_ns,
            failed: spans.iter().any(|s| s.failed),
            ..TraceFacts::default()
        };
        facts.paths = tree.paths(root, root_ns);
        facts.edges = tree.distinct_edges();
        facts.attempts = tree.attempts(retry_gap_ns);
        facts
    }

    /// A stable 64-bit signature of the edge set (FNV-1a, so it is the
    /// same across processes and restarts).
    pub fn signature(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for e in &self.edges {
            for part in [e.source.as_bytes(), b"->", e.target.as_bytes(), b";"] {
                for byte in part {
                    h ^= u64::from(*byte);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        h
    }
}

/// A trace's spans as a tree, by index.
struct Tree<'a> {
    spans: &'a [SpanRec],
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

impl<'a> Tree<'a> {
    fn new(spans: &'a [SpanRec]) -> Tree<'a> {
        let index: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let mut children = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            match s.parent.and_then(|p| index.get(&p)) {
                Some(&p) if p != i => children[p].push(i),
                _ => roots.push(i),
            }
        }
        for c in &mut children {
            c.sort_by_key(|&i| spans[i].start);
        }
        Tree {
            spans,
            children,
            roots,
        }
    }

    /// The earliest-starting root (a trace whose root span was lost has
    /// several; the first stands for the request).
    fn root(&self) -> Option<usize> {
        self.roots
            .iter()
            .copied()
            .min_by_key(|&i| self.spans[i].start)
    }

    /// The callee's SERVER/CONSUMER span of an outbound span, if reported.
    fn callee(&self, outbound: usize) -> Option<usize> {
        self.children[outbound]
            .iter()
            .copied()
            .find(|&c| self.spans[c].kind.is_inbound())
    }

    /// The edge an outbound span crosses, named as the graph names it.
    fn edge(&self, i: usize) -> Option<TraceEdge> {
        let s = &self.spans[i];
        if !s.kind.is_outbound() {
            return None;
        }
        let to_peer = |p: &PeerNode| TraceEdge {
            source: s.service.clone(),
            target: p.name.clone(),
            kind: match p.kind {
                NodeKind::Database => EdgeKind::Database,
                NodeKind::Messaging => EdgeKind::Messaging,
                NodeKind::Service | NodeKind::External => EdgeKind::External,
            },
        };
        if let Some(p) = s.peer.as_ref().filter(|p| p.kind == NodeKind::Database) {
            return Some(to_peer(p));
        }
        if let Some(c) = self.callee(i) {
            let callee = &self.spans[c];
            let messaging = s.kind == SpanKind::Producer || callee.kind == SpanKind::Consumer;
            return Some(TraceEdge {
                source: s.service.clone(),
                target: callee.service.clone(),
                kind: if messaging {
                    EdgeKind::Messaging
                } else {
                    EdgeKind::Rpc
                },
            });
        }
        s.peer.as_ref().map(to_peer)
    }

    /// Outbound spans a service makes while handling span `i`, looking
    /// through its internal spans but not into other services.
    fn exits(&self, i: usize, out: &mut Vec<usize>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for &c in &self.children[i] {
            let kind = self.spans[c].kind;
            if kind.is_outbound() {
                out.push(c);
            } else if !kind.is_inbound() {
                self.exits(c, out, depth + 1);
            }
        }
    }

    fn paths(&self, root: usize, root_ns: u64) -> Vec<PathFact> {
        let mut walk = PathWalk {
            tree: self,
            root_ns,
            nodes: vec![self.spans[root].service.clone()],
            hops: Vec::new(),
            found: HashMap::new(),
        };
        let exits = if self.spans[root].kind.is_outbound() {
            vec![root]
        } else {
            let mut e = Vec::new();
            self.exits(root, &mut e, 0);
            e
        };
        walk.follow(&exits, 0);
        let mut paths: Vec<PathFact> = walk.found.into_values().collect();
        paths.sort_by(|a, b| a.nodes.cmp(&b.nodes));
        paths
    }

    fn distinct_edges(&self) -> Vec<TraceEdge> {
        let mut edges: Vec<TraceEdge> =
            (0..self.spans.len()).filter_map(|i| self.edge(i)).collect();
        edges.sort_by(|a, b| (&a.source, &a.target, a.kind).cmp(&(&b.source, &b.target, b.kind)));
        edges.dedup();
        edges
    }

    /// Attempts and retries per edge. Siblings are CLIENT spans with the
    /// same parent, peer and name; where any of them carries
    /// `http.request.resend_count`, that attribute alone decides, otherwise
    /// a sibling that starts within the gap after a failed one is a retry.
    /// (A loop of successful calls — an N+1 query — is not a retry storm.)
    fn attempts(&self, gap_ns: u64) -> Vec<(TraceEdge, u64, u64)> {
        let mut groups: HashMap<(Option<SpanId>, TraceEdge, &str), Vec<usize>> = HashMap::new();
        for i in 0..self.spans.len() {
            if self.spans[i].kind != SpanKind::Client {
                continue;
            }
            if let Some(edge) = self.edge(i) {
                let key = (self.spans[i].parent, edge, &*self.spans[i].name);
                groups.entry(key).or_default().push(i);
            }
        }
        let mut per_edge: HashMap<TraceEdge, (u64, u64)> = HashMap::new();
        for ((_, edge, _), mut group) in groups {
            group.sort_by_key(|&i| self.spans[i].start);
            let retries = self.retries_in(&group, gap_ns);
            let slot = per_edge.entry(edge).or_default();
            slot.0 += group.len() as u64;
            slot.1 += retries;
        }
        let mut out: Vec<_> = per_edge.into_iter().map(|(e, (a, r))| (e, a, r)).collect();
        out.sort_by(|a, b| (&a.0.source, &a.0.target).cmp(&(&b.0.source, &b.0.target)));
        out
    }

    fn retries_in(&self, group: &[usize], gap_ns: u64) -> u64 {
        let spans = self.spans;
        if group.iter().any(|&i| spans[i].resend.is_some()) {
            return group
                .iter()
                .filter(|&&i| spans[i].resend.is_some_and(|n| n > 0))
                .count() as u64;
        }
        group
            .windows(2)
            .filter(|w| {
                let (a, b) = (&spans[w[0]], &spans[w[1]]);
                a.failed && b.start >= a.start && b.start.saturating_sub(a.end) <= gap_ns
            })
            .count() as u64
    }
}

/// Depth-first walk from the root, one path per leaf.
struct PathWalk<'t, 'a> {
    tree: &'t Tree<'a>,
    root_ns: u64,
    nodes: Vec<Arc<str>>,
    hops: Vec<usize>,
    found: HashMap<PathKey, PathFact>,
}

impl PathWalk<'_, '_> {
    fn follow(&mut self, exits: &[usize], depth: usize) {
        let mut went_on = false;
        for &c in exits {
            if self.found.len() >= MAX_PATHS_PER_TRACE || depth > MAX_DEPTH {
                break;
            }
            let Some(edge) = self.tree.edge(c) else {
                continue;
            };
            went_on = true;
            self.nodes.push(edge.target);
            self.hops.push(c);
            match self.tree.callee(c) {
                Some(s) => {
                    let mut next = Vec::new();
                    self.tree.exits(s, &mut next, 0);
                    self.follow(&next, depth + 1);
                }
                None => self.emit(),
            }
            self.nodes.pop();
            self.hops.pop();
        }
        if !went_on && self.nodes.len() >= 2 {
            self.emit();
        }
    }

    fn emit(&mut self) {
        let spans = self.tree.spans;
        let durations: Vec<u64> = self
            .hops
            .iter()
            .map(|&h| spans[h].end.saturating_sub(spans[h].start))
            .collect();
        let failed = self
            .hops
            .iter()
            .any(|&h| spans[h].failed || self.tree.callee(h).is_some_and(|s| spans[s].failed));
        let shares = durations
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let next = durations.get(k + 1).copied().unwrap_or(0);
                let own = d.saturating_sub(next) as f64;
                if self.root_ns == 0 {
                    0.0
                } else {
                    (own / self.root_ns as f64).min(1.0)
                }
            })
            .collect();
        let key: PathKey = self.nodes.clone().into();
        let first = durations.first().copied().unwrap_or(0);
        match self.found.get_mut(&key) {
            // Keep the slowest occurrence's shares: the tail is what matters.
            Some(seen) => {
                seen.failed |= failed;
                let seen_first = seen.shares.first().copied().unwrap_or(0.0);
                if first as f64 / self.root_ns.max(1) as f64 > seen_first {
                    seen.shares = shares;
                }
            }
            None => {
                self.found.insert(
                    key.clone(),
                    PathFact {
                        nodes: key,
                        failed,
                        shares,
                    },
                );
            }
        }
    }
}

/// Records a trace's paths into a window's path table (bounded).
pub fn record_paths(paths: &mut FastMap<PathKey, PathStats>, facts: &TraceFacts, max_paths: usize) {
    for p in &facts.paths {
        if !paths.contains_key(&p.nodes) && paths.len() >= max_paths {
            continue;
        }
        let stats = paths.entry(p.nodes.clone()).or_default();
        stats.traces += 1;
        stats.errors += u64::from(p.failed);
        stats.latency.record(facts.root_ns);
        if stats.share_sums.len() < p.shares.len() {
            stats.share_sums.resize(p.shares.len(), 0.0);
        }
        for (sum, share) in stats.share_sums.iter_mut().zip(&p.shares) {
            *sum += share;
        }
    }
}

/// Records a trace into its cluster (bounded).
pub fn record_cluster(
    clusters: &mut FastMap<u64, ClusterStats>,
    facts: &TraceFacts,
    max_clusters: usize,
) {
    if facts.edges.is_empty() {
        return;
    }
    let signature = facts.signature();
    if !clusters.contains_key(&signature) && clusters.len() >= max_clusters {
        return;
    }
    let c = clusters.entry(signature).or_default();
    if c.edges.is_empty() {
        c.edges = facts
            .edges
            .iter()
            .map(|e| Arc::from(format!("{}->{}", e.source, e.target)))
            .collect();
    }
    c.traces += 1;
    c.errors += u64::from(facts.failed);
    c.latency.record(facts.root_ns);
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
