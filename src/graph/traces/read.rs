//! Reading one assembled trace: its tree, the paths a request took, the
//! edges it crossed and the retries among its calls.
//!
//! A trace is read once, when it goes quiet, and every trace is read, so
//! this runs for every span that passes through faultline. The [`Reader`]
//! therefore keeps its working space (index, tree, walk stacks, results)
//! from one trace to the next: in the steady state reading a trace
//! allocates nothing. Names are [`Sym`]s; the shard turns them back into
//! names only where a window records them.

use super::SpanRec;
use crate::graph::partial::{EdgeKind, NodeKind};
use crate::graph::symbols::{Sym, Symbols};
use crate::model::SpanKind;

/// "No span" in the tree's index arrays.
const NONE: u32 = u32::MAX;
/// Paths emitted per trace at most, and the deepest chain followed.
const MAX_PATHS_PER_TRACE: usize = 64;
const MAX_DEPTH: usize = 32;

/// One edge as a trace shows it, named as the graph names nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceEdge {
    pub source: Sym,
    pub target: Sym,
    pub kind: EdgeKind,
}

/// A path as one trace followed it: its nodes and per-hop shares are
/// ranges of [`TraceFacts::path_nodes`] and [`TraceFacts::path_shares`].
#[derive(Debug, Clone, Copy)]
pub struct PathFact {
    nodes: (u32, u32),
    shares: (u32, u32),
    pub failed: bool,
}

/// What one assembled trace tells (valid until the next trace is read).
#[derive(Debug, Default)]
pub struct TraceFacts {
    pub root_ns: u64,
    pub failed: bool,
    pub paths: Vec<PathFact>,
    path_nodes: Vec<Sym>,
    path_shares: Vec<f64>,
    /// Distinct edges crossed, sorted by symbol.
    pub edges: Vec<TraceEdge>,
    /// Per edge: (attempts, retries).
    pub attempts: Vec<(TraceEdge, u64, u64)>,
}

impl TraceFacts {
    pub fn nodes(&self, p: &PathFact) -> &[Sym] {
        &self.path_nodes[p.nodes.0 as usize..p.nodes.1 as usize]
    }

    pub fn shares(&self, p: &PathFact) -> &[f64] {
        &self.path_shares[p.shares.0 as usize..p.shares.1 as usize]
    }

    fn clear(&mut self) {
        self.root_ns = 0;
        self.failed = false;
        self.paths.clear();
        self.path_nodes.clear();
        self.path_shares.clear();
        self.edges.clear();
        self.attempts.clear();
    }
}

/// Reads traces, reusing its buffers (see the module docs).
#[derive(Default)]
pub struct Reader {
    /// (span id, index), sorted: the parent lookup.
    ids: Vec<(u64, u32)>,
    /// Children of span `i`: `children[child_start[i]..child_start[i + 1]]`,
    /// by start time.
    child_start: Vec<u32>,
    children: Vec<u32>,
    parent_of: Vec<u32>,
    /// The edge each span crosses, worked out once per trace: the walk,
    /// the distinct edges and the retry grouping each ask for it.
    edge_of: Vec<Option<TraceEdge>>,
    /// Exits of the spans being walked, as a stack of ranges.
    exits: Vec<u32>,
    walk_nodes: Vec<Sym>,
    walk_hops: Vec<u32>,
    durations: Vec<u64>,
    /// Client calls for retry grouping: (parent, edge, name, start, index).
    calls: Vec<(u64, TraceEdge, Sym, u64, u32)>,
    facts: TraceFacts,
}

impl Reader {
    /// Reads `spans` (one trace); the facts stay valid until the next call.
    pub fn read(&mut self, spans: &[SpanRec], retry_gap_ns: u64) -> &TraceFacts {
        self.facts.clear();
        self.build_tree(spans);
        let mut tree = Tree {
            spans,
            child_start: &self.child_start,
            children: &self.children,
            edge_of: &[],
        };
        self.edge_of.clear();
        self.edge_of
            .extend((0..spans.len()).map(|i| tree.find_edge(i)));
        tree.edge_of = &self.edge_of;
        let Some(root) = root(spans, &self.parent_of) else {
            return &self.facts;
        };
        let f = &mut self.facts;
        f.root_ns = spans[root].end.saturating_sub(spans[root].start);
        f.failed = spans.iter().any(|s| s.failed);
        let mut walk = Walk {
            tree: &tree,
            root_ns: f.root_ns,
            exits: &mut self.exits,
            nodes: &mut self.walk_nodes,
            hops: &mut self.walk_hops,
            durations: &mut self.durations,
            facts: f,
        };
        walk.run(root);
        distinct_edges(&tree, &mut self.facts.edges);
        attempts(
            &tree,
            retry_gap_ns,
            &mut self.calls,
            &mut self.facts.attempts,
        );
        &self.facts
    }

    fn build_tree(&mut self, spans: &[SpanRec]) {
        let n = spans.len();
        self.ids.clear();
        self.ids
            .extend(spans.iter().enumerate().map(|(i, s)| (s.span_id, i as u32)));
        self.ids.sort_unstable();
        self.parent_of.clear();
        self.parent_of
            .extend(spans.iter().enumerate().map(|(i, s)| {
                match self.ids.binary_search_by_key(&s.parent, |&(id, _)| id) {
                    Ok(at) if s.parent != 0 && self.ids[at].1 != i as u32 => self.ids[at].1,
                    _ => NONE,
                }
            }));
        self.child_start.clear();
        self.child_start.resize(n + 1, 0);
        for &p in &self.parent_of {
            if p != NONE {
                self.child_start[p as usize + 1] += 1;
            }
        }
        for i in 0..n {
            self.child_start[i + 1] += self.child_start[i];
        }
        self.children.clear();
        self.children.resize(self.child_start[n] as usize, 0);
        let mut fill: Vec<u32> = Vec::new();
        std::mem::swap(&mut fill, &mut self.exits);
        fill.clear();
        fill.extend_from_slice(&self.child_start[..n]);
        for (i, &p) in self.parent_of.iter().enumerate() {
            if p != NONE {
                self.children[fill[p as usize] as usize] = i as u32;
                fill[p as usize] += 1;
            }
        }
        fill.clear();
        std::mem::swap(&mut fill, &mut self.exits);
        for i in 0..n {
            let (a, b) = (
                self.child_start[i] as usize,
                self.child_start[i + 1] as usize,
            );
            self.children[a..b].sort_by_key(|&c| spans[c as usize].start);
        }
    }
}

/// The earliest-starting root (a trace whose root span was lost has several;
/// the first stands for the request).
fn root(spans: &[SpanRec], parent_of: &[u32]) -> Option<usize> {
    (0..spans.len())
        .filter(|&i| parent_of[i] == NONE)
        .min_by_key(|&i| spans[i].start)
}

/// A trace's spans as a tree, by index.
struct Tree<'a> {
    spans: &'a [SpanRec],
    child_start: &'a [u32],
    children: &'a [u32],
    /// [`Tree::find_edge`] of every span (see [`Reader`]).
    edge_of: &'a [Option<TraceEdge>],
}

impl Tree<'_> {
    fn children(&self, i: usize) -> &[u32] {
        &self.children[self.child_start[i] as usize..self.child_start[i + 1] as usize]
    }

    /// The callee's SERVER/CONSUMER span of an outbound span, if reported.
    fn callee(&self, outbound: usize) -> Option<usize> {
        self.children(outbound)
            .iter()
            .map(|&c| c as usize)
            .find(|&c| self.spans[c].kind.is_inbound())
    }

    /// The edge an outbound span crosses.
    fn edge(&self, i: usize) -> Option<TraceEdge> {
        self.edge_of[i]
    }

    /// [`Tree::edge`], worked out from the span and its children.
    fn find_edge(&self, i: usize) -> Option<TraceEdge> {
        let s = &self.spans[i];
        if !s.kind.is_outbound() {
            return None;
        }
        let to_peer = TraceEdge {
            source: s.service,
            target: s.peer,
            kind: match s.peer_kind {
                NodeKind::Database => EdgeKind::Database,
                NodeKind::Messaging => EdgeKind::Messaging,
                NodeKind::Service | NodeKind::External => EdgeKind::External,
            },
        };
        let has_peer = s.peer != Symbols::NONE;
        if has_peer && s.peer_kind == NodeKind::Database {
            return Some(to_peer);
        }
        if let Some(c) = self.callee(i) {
            let callee = &self.spans[c];
            let messaging = s.kind == SpanKind::Producer || callee.kind == SpanKind::Consumer;
            return Some(TraceEdge {
                source: s.service,
                target: callee.service,
                kind: if messaging {
                    EdgeKind::Messaging
                } else {
                    EdgeKind::Rpc
                },
            });
        }
        has_peer.then_some(to_peer)
    }

    /// Outbound spans a service makes while handling span `i`, looking
    /// through its internal spans but not into other services.
    fn exits(&self, i: usize, out: &mut Vec<u32>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for &c in self.children(i) {
            let kind = self.spans[c as usize].kind;
            if kind.is_outbound() {
                out.push(c);
            } else if !kind.is_inbound() {
                self.exits(c as usize, out, depth + 1);
            }
        }
    }
}

/// Depth-first walk from the root, one path per leaf.
struct Walk<'w, 't> {
    tree: &'w Tree<'t>,
    root_ns: u64,
    /// Exits of every span on the current chain, stacked.
    exits: &'w mut Vec<u32>,
    nodes: &'w mut Vec<Sym>,
    hops: &'w mut Vec<u32>,
    durations: &'w mut Vec<u64>,
    facts: &'w mut TraceFacts,
}

impl Walk<'_, '_> {
    fn run(&mut self, root: usize) {
        self.exits.clear();
        self.nodes.clear();
        self.hops.clear();
        self.nodes.push(self.tree.spans[root].service);
        if self.tree.spans[root].kind.is_outbound() {
            self.exits.push(root as u32);
        } else {
            self.tree.exits(root, self.exits, 0);
        }
        let end = self.exits.len();
        self.follow(0, end, 0);
    }

    fn follow(&mut self, from: usize, to: usize, depth: usize) {
        let mut went_on = false;
        for k in from..to {
            if self.facts.paths.len() >= MAX_PATHS_PER_TRACE || depth > MAX_DEPTH {
                break;
            }
            let c = self.exits[k] as usize;
            let Some(edge) = self.tree.edge(c) else {
                continue;
            };
            went_on = true;
            self.nodes.push(edge.target);
            self.hops.push(c as u32);
            match self.tree.callee(c) {
                Some(s) => {
                    let start = self.exits.len();
                    self.tree.exits(s, self.exits, 0);
                    let end = self.exits.len();
                    self.follow(start, end, depth + 1);
                    self.exits.truncate(start);
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
        self.durations.clear();
        self.durations.extend(self.hops.iter().map(|&h| {
            spans[h as usize]
                .end
                .saturating_sub(spans[h as usize].start)
        }));
        let failed = self.hops.iter().any(|&h| {
            let h = h as usize;
            spans[h].failed || self.tree.callee(h).is_some_and(|s| spans[s].failed)
        });
        let first = self.durations.first().copied().unwrap_or(0);
        let seen = self
            .facts
            .paths
            .iter()
            .position(|p| self.facts.nodes(p) == &self.nodes[..]);
        match seen {
            Some(at) => {
                let p = self.facts.paths[at];
                self.facts.paths[at].failed |= failed;
                // Keep the slowest occurrence's shares: the tail is what matters.
                let seen_first = self.facts.shares(&p).first().copied().unwrap_or(0.0);
                if first as f64 / self.root_ns.max(1) as f64 > seen_first {
                    let (a, b) = (p.shares.0 as usize, p.shares.1 as usize);
                    for (k, slot) in (a..b).enumerate() {
                        self.facts.path_shares[slot] = self.share(k);
                    }
                }
            }
            None => self.push_path(failed),
        }
    }

    fn push_path(&mut self, failed: bool) {
        let f = &mut *self.facts;
        let nodes = (
            f.path_nodes.len() as u32,
            (f.path_nodes.len() + self.nodes.len()) as u32,
        );
        f.path_nodes.extend_from_slice(self.nodes);
        let shares_from = f.path_shares.len() as u32;
        for k in 0..self.durations.len() {
            let share = self.share(k);
            self.facts.path_shares.push(share);
        }
        let shares = (shares_from, self.facts.path_shares.len() as u32);
        self.facts.paths.push(PathFact {
            nodes,
            shares,
            failed,
        });
    }

    /// Hop `k`'s exclusive share of the root's duration.
    fn share(&self, k: usize) -> f64 {
        let d = self.durations[k];
        let next = self.durations.get(k + 1).copied().unwrap_or(0);
        let own = d.saturating_sub(next) as f64;
        if self.root_ns == 0 {
            0.0
        } else {
            (own / self.root_ns as f64).min(1.0)
        }
    }
}

fn distinct_edges(tree: &Tree<'_>, out: &mut Vec<TraceEdge>) {
    out.clear();
    out.extend((0..tree.spans.len()).filter_map(|i| tree.edge(i)));
    out.sort_unstable();
    out.dedup();
}

/// Attempts and retries per edge. Siblings are CLIENT spans with the same
/// parent, edge and name; where any of them carries
/// `http.request.resend_count`, that attribute alone decides, otherwise a
/// sibling that starts within the gap after a failed one is a retry. (A loop
/// of successful calls — an N+1 query — is not a retry storm.)
fn attempts(
    tree: &Tree<'_>,
    gap_ns: u64,
    calls: &mut Vec<(u64, TraceEdge, Sym, u64, u32)>,
    out: &mut Vec<(TraceEdge, u64, u64)>,
) {
    let spans = tree.spans;
    calls.clear();
    for (i, s) in spans.iter().enumerate() {
        if s.kind != SpanKind::Client {
            continue;
        }
        if let Some(edge) = tree.edge(i) {
            calls.push((s.parent, edge, s.name, s.start, i as u32));
        }
    }
    calls.sort_unstable();
    out.clear();
    for group in calls.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
        let retries = retries_in(spans, group, gap_ns);
        match out.last_mut() {
            Some(last) if last.0 == group[0].1 => {
                last.1 += group.len() as u64;
                last.2 += retries;
            }
            _ => out.push((group[0].1, group.len() as u64, retries)),
        }
    }
    // Groups of one edge under different parents are not adjacent: merge them.
    out.sort_unstable_by_key(|a| a.0);
    let mut merged = 0;
    for k in 0..out.len() {
        if merged > 0 && out[merged - 1].0 == out[k].0 {
            out[merged - 1].1 += out[k].1;
            out[merged - 1].2 += out[k].2;
        } else {
            out[merged] = out[k];
            merged += 1;
        }
    }
    out.truncate(merged);
}

fn retries_in(spans: &[SpanRec], group: &[(u64, TraceEdge, Sym, u64, u32)], gap_ns: u64) -> u64 {
    let span = |g: &(u64, TraceEdge, Sym, u64, u32)| &spans[g.4 as usize];
    if group.iter().any(|g| span(g).resend.is_some()) {
        return group
            .iter()
            .filter(|g| span(g).resend.is_some_and(|n| n > 0))
            .count() as u64;
    }
    group
        .windows(2)
        .filter(|w| {
            let (a, b) = (span(&w[0]), span(&w[1]));
            a.failed && b.start >= a.start && b.start.saturating_sub(a.end) <= gap_ns
        })
        .count() as u64
}
