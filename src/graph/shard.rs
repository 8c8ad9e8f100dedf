//! [`Shard`]: one aggregator — a pairing store and its windows, owned by one thread.
//!
//! Spans are routed to shards by trace id, so both sides of every boundary
//! meet in the same shard and no shard ever shares mutable state with
//! another: the hot path takes no lock. Reads ask each shard for a merged
//! partial and merge those.

use std::collections::HashSet;
use std::sync::Arc;

use super::naming::{database_node, peer_node, PeerNode, PeerRef};
use super::pairing::{ClientSide, Outcomes, PairingCounters, PairingStore, ServerSide};
use super::partial::{name_hash, EdgeKey, EdgeKind, HistoryCaps, NodeKind, WindowPartial};
use super::recent::{pair_address, Recent};
use super::settings::{Limits, OVERFLOW};
use super::stats::{add_client, Delivery, MAX_DELIVERIES};
use super::symbols::{Sym, Symbols};
use super::traces::{Recorder, SpanRec, TraceAssembler, TraceFacts};
use super::window::{WindowSelect, Windows};
use crate::model::{Span, SpanKind};

/// The name of the virtual caller of a root SERVER span, as in Tempo.
pub const USER_NODE: &str = "user";

/// An operation's name, its symbol in trace assembly and its [`name_hash`].
type Operation = (Arc<str>, Sym, u64);

/// What a shard returns to a read.
/// What a shard hands a reader: its selected windows, unmerged.
pub struct ShardSnapshot {
    /// A copy of the window in progress.
    pub partial: WindowPartial,
    /// The selected closed (and history) partials, shared.
    pub shared: Vec<std::sync::Arc<WindowPartial>>,
    pub window_start_ms: u64,
    pub pairing: PairingCounters,
}

impl ShardSnapshot {
    /// Merges every partial of the snapshot into `out`.
    pub fn merge_into(&self, out: &mut WindowPartial) {
        out.merge(&self.partial);
        self.shared.iter().for_each(|p| out.merge(p));
    }
}

pub struct Shard {
    limits: Arc<Limits>,
    pairing: PairingStore,
    windows: Windows,
    /// Names this shard has admitted; also its interner.
    known: HashSet<Arc<str>, ahash::RandomState>,
    known_edges: AdmittedEdges,
    known_ops: HashSet<(Arc<str>, Arc<str>), ahash::RandomState>,
    /// Interned peer and system names, before they are admitted as nodes.
    peer_names: HashSet<Arc<str>, ahash::RandomState>,
    /// Interned operation names (kept apart from node names, which are admitted).
    op_names: HashSet<Arc<str>, ahash::RandomState>,
    overflow: Arc<str>,
    traces: TraceAssembler,
    /// Names as trace assembly keeps them.
    names: Symbols,
    recorder: Recorder,
    /// The admitted node (and its [`name_hash`]) of each recently seen
    /// resource's service name.
    recent_services: Recent<Arc<str>, (Arc<str>, u64)>,
    /// The operation (and its symbol) of a (service, span name) pair, for
    /// inbound spans (admitted) and outbound ones (interned only).
    recent_served: Recent<(Arc<str>, Arc<str>), Operation>,
    recent_called: Recent<Arc<str>, Operation>,
}

impl Shard {
    pub fn new(limits: Arc<Limits>) -> Shard {
        let s = limits.settings();
        let traces = TraceAssembler::new(s.traces.clone());
        let names = Symbols::new(2 * s.max_nodes + s.max_operations, OVERFLOW.into());
        Shard {
            pairing: PairingStore::new(s.pairing_ttl_ms, s.max_pending),
            windows: Windows::new(s.window_ms, s.windows_kept)
                .with_budget(s.max_edges)
                .with_history_caps(HistoryCaps {
                    paths: s.traces.max_paths,
                    destinations: s.max_nodes,
                }),
            limits,
            known: HashSet::default(),
            known_edges: AdmittedEdges::default(),
            known_ops: HashSet::default(),
            op_names: HashSet::default(),
            peer_names: HashSet::default(),
            names,
            overflow: OVERFLOW.into(),
            traces,
            recorder: Recorder::default(),
            recent_services: Recent::default(),
            recent_served: Recent::default(),
            recent_called: Recent::default(),
        }
    }

    /// Adds one span as seen at `now_ms`.
    pub fn ingest(&mut self, span: &Span, now_ms: u64) {
        let (service, service_hash) = self.service_node(span.service());
        let failed = span.is_error();
        let duration = span.duration_nanos();
        let inbound = span.kind.is_inbound() || span.is_root();
        let (op_sym, op_hash) = self.span_operation(&service, &span.name, inbound);
        let node =
            self.windows
                .current(now_ms)
                .node_hashed(&service, service_hash, NodeKind::Service);
        node.kind = NodeKind::Service;
        if node.k8s_namespace.is_none() && span.resource.k8s_namespace.is_some() {
            node.k8s_namespace = span.resource.k8s_namespace.as_deref().map(Arc::from);
            node.k8s_deployment = span.resource.k8s_deployment.as_deref().map(Arc::from);
        }
        if inbound {
            node.stats.calls.record(duration, failed);
            let op = served_op(&self.recent_served, &self.overflow, &service, &span.name);
            node.stats
                .operation_hashed(op, op_hash)
                .record(duration, failed);
        }
        let peer = self.peer_of(span);
        self.count_message(span, &service, now_ms);
        let service_sym = self.names.sym(&service);
        let peer_sym = peer
            .as_ref()
            .map_or(Symbols::NONE, |p| self.names.sym(&p.name));
        let peer_kind = peer.as_ref().map_or(NodeKind::External, |p| p.kind);
        // Made inside `add_with`, in the trace's buffer (see `client_side`).
        self.traces.add_with(span.trace_id, now_ms, || SpanRec {
            span_id: u64::from_le_bytes(span.span_id),
            parent: span.parent_span_id.map_or(0, u64::from_le_bytes),
            start: span.start_unix_nano,
            end: span.end_unix_nano,
            service: service_sym,
            name: op_sym,
            peer: peer_sym,
            resend: span
                .attributes
                .http_resend_count
                .map(|n| n.clamp(0, u32::MAX.into()) as u32),
            peer_kind,
            kind: span.kind,
            failed,
        });
        match span.kind {
            SpanKind::Client | SpanKind::Producer => {
                self.outbound(span, service, failed, peer, now_ms)
            }
            SpanKind::Server | SpanKind::Consumer => self.inbound(span, service, failed, now_ms),
            _ => {}
        }
    }

    /// The database or named peer of a CLIENT/PRODUCER span.
    fn peer_of(&mut self, span: &Span) -> Option<PeerNode> {
        if !span.kind.is_outbound() {
            return None;
        }
        let naming = self.limits.settings().naming;
        if span.kind == SpanKind::Client {
            if let Some(db) = database_node(&span.attributes, naming) {
                return Some(self.intern_peer(db));
            }
        }
        peer_node(&span.attributes, naming).map(|p| self.intern_peer(p))
    }

    /// Counts a PRODUCER or CONSUMER span of `service` against its destination.
    fn count_message(&mut self, span: &Span, service: &Arc<str>, now_ms: u64) {
        let (Some(name), true) = (
            span.attributes.messaging_destination(),
            matches!(span.kind, SpanKind::Producer | SpanKind::Consumer),
        ) else {
            return;
        };
        let name = self.intern(name);
        let system = span.attributes.messaging_system().map(|s| self.intern(s));
        let d = self.windows.current(now_ms).destination(&name);
        if d.system.is_none() {
            d.system = system;
        }
        if span.kind == SpanKind::Producer {
            d.produced += 1;
            add_client(&mut d.producers, service);
        } else {
            d.consumed += 1;
            add_client(&mut d.consumers, service);
        }
    }

    /// The destination and ordering key of a messaging span.
    fn message_of(&mut self, span: &Span) -> Message {
        let a = &span.attributes;
        if !matches!(span.kind, SpanKind::Producer | SpanKind::Consumer) {
            return (None, None);
        }
        let destination = a.messaging_destination().map(|d| self.intern(d));
        let key = a
            .messaging_key()
            .or(a.messaging_partition())
            .map(|k| self.intern(k));
        (destination, key)
    }

    fn outbound(
        &mut self,
        span: &Span,
        service: Arc<str>,
        failed: bool,
        peer: Option<PeerNode>,
        now_ms: u64,
    ) {
        let message = self.message_of(span);
        let database = peer
            .as_ref()
            .filter(|p| p.kind == NodeKind::Database && span.kind == SpanKind::Client)
            .cloned();
        let (pairing, mut boundaries) = self.boundaries(now_ms);
        match database {
            Some(db) => {
                let client = client_side(span, service, failed, peer, message);
                boundaries.to_peer(client, db);
            }
            None => pairing.add_client(
                (span.trace_id, span.span_id),
                client_side(span, service, failed, peer, message),
                now_ms,
                &mut boundaries,
            ),
        }
    }

    fn inbound(&mut self, span: &Span, service: Arc<str>, failed: bool, now_ms: u64) {
        let message = self.message_of(span);
        let linked = span.kind == SpanKind::Consumer && !span.links.is_empty();
        let root_caller =
            (!linked && span.parent_span_id.is_none()).then(|| self.root_caller(span));
        let (pairing, mut boundaries) = self.boundaries(now_ms);
        if linked {
            let server = server_side(span, service, failed, message);
            for link in &span.links {
                let key = (link.trace_id, link.span_id);
                pairing.add_server(key, server.clone(), now_ms, &mut boundaries);
            }
        } else if let Some(parent) = span.parent_span_id {
            pairing.add_server(
                (span.trace_id, parent),
                server_side(span, service, failed, message),
                now_ms,
                &mut boundaries,
            );
        } else if let Some(caller) = root_caller {
            let server = server_side(span, service, failed, message);
            boundaries.root_edge(caller, server);
        }
    }

    /// The caller of a root SERVER/CONSUMER span: no caller will ever
    /// report, so the edge comes from the peer it names, or from "user".
    fn root_caller(&mut self, span: &Span) -> PeerNode {
        let naming = self.limits.settings().naming;
        let caller = peer_node(&span.attributes, naming).unwrap_or(PeerRef {
            name: USER_NODE.into(),
            kind: NodeKind::External,
            system: None,
        });
        self.intern_peer(caller)
    }

    /// The pairing store, and what records its pairs in the current window.
    fn boundaries(&mut self, now_ms: u64) -> (&mut PairingStore, Boundaries<'_>) {
        let Shard {
            pairing,
            windows,
            known,
            known_edges,
            limits,
            overflow,
            ..
        } = self;
        let boundaries = Boundaries {
            windows,
            known,
            known_edges,
            limits,
            overflow,
            now_ms,
        };
        (pairing, boundaries)
    }

    /// Advances windows and expires pending pairs (called every tick).
    pub fn tick(&mut self, now_ms: u64) {
        self.windows.advance(now_ms);
        let (pairing, mut boundaries) = self.boundaries(now_ms);
        pairing.expire(now_ms, &mut boundaries);
        self.record_traces(now_ms, false);
    }

    /// Expires every pending pair and open trace now, as at the end of an
    /// offline import.
    pub fn flush(&mut self, now_ms: u64) {
        let (pairing, mut boundaries) = self.boundaries(now_ms);
        pairing.expire_all(&mut boundaries);
        self.record_traces(now_ms, true);
    }

    /// Reads the traces quiet since their deadline, after each batch and
    /// not only on the tick. Why: at full load the open traces are at
    /// their cap, and a trace read at its deadline frees room at once;
    /// read only on the 1 s tick, each was held up to a second longer and
    /// about half of the traces found no room.
    pub fn read_quiet_traces(&mut self, now_ms: u64) {
        self.record_traces(now_ms, false);
    }

    /// Closed windows after `index`, for the operators.
    pub fn closed_after(&self, index: u64) -> super::ClosedWindows {
        (
            self.windows.closed_after(index),
            self.windows.current_index(),
        )
    }

    /// Spans not assembled into traces because `max_traces` traces were
    /// open, open traces had room for `max_open_spans` span records, or
    /// their trace was outside the sample taken while short of that room.
    pub fn traces_skipped(&self) -> u64 {
        self.traces.skipped
    }

    /// Reads the traces that went quiet (all of them when `all`) into the
    /// current window: retries per edge, paths and clusters.
    fn record_traces(&mut self, now_ms: u64, all: bool) {
        let max = self.traces.settings().max_paths;
        let Shard {
            traces,
            windows,
            recorder,
            names,
            known_edges,
            limits,
            overflow,
            ..
        } = self;
        let mut record = |f: &TraceFacts| {
            let window = windows.current(now_ms);
            recorder.attempts(f);
            recorder.paths(&mut window.paths, f, names, max);
            recorder.cluster(&mut window.clusters, f, names, max);
        };
        if all {
            traces.expire_all(&mut record);
        } else {
            traces.expire(now_ms, &mut record);
        }
        let counted = recorder.drain_attempts();
        if counted.is_empty() {
            return;
        }
        // The same window as the traces' paths: `now_ms` has not moved.
        let window = windows.current(now_ms);
        for &(e, attempts, retries) in counted {
            let (source, target) = (names.name(e.source), names.name(e.target));
            let (key, hash) =
                known_edges.key(limits, overflow, source.clone(), target.clone(), e.kind);
            let edge = window.edge_hashed(&key, hash);
            edge.attempts += attempts;
            edge.retries += retries;
        }
    }

    pub fn pairing_counters(&self) -> PairingCounters {
        self.pairing.counters()
    }

    pub fn snapshot(&self, select: WindowSelect) -> ShardSnapshot {
        let selected = self.windows.select_parts(select);
        ShardSnapshot {
            partial: selected.current,
            shared: selected.shared,
            window_start_ms: selected.start_ms,
            pairing: self.pairing.counters(),
        }
    }

    /// Interns a peer's names. Peers repeat on nearly every client span, so
    /// this saves an allocation per span; the interner stops growing at the
    /// node cap (past it, names are allocated per span, as a fallback).
    fn intern_peer(&mut self, peer: PeerRef<'_>) -> PeerNode {
        PeerNode {
            name: self.intern(&peer.name),
            kind: peer.kind,
            system: peer.system.map(|s| self.intern(s)),
        }
    }

    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(known) = self.peer_names.get(text) {
            return known.clone();
        }
        let arc: Arc<str> = text.into();
        if self.peer_names.len() < self.limits.settings().max_nodes {
            self.peer_names.insert(arc.clone());
        }
        arc
    }

    /// [`Shard::node_name`] of a resource's service, remembered by address:
    /// the spans of a request share their resource's name.
    fn service_node(&mut self, service: &Arc<str>) -> (Arc<str>, u64) {
        if let Some((node, hash)) = self.recent_services.get(service) {
            return (node.clone(), *hash);
        }
        let node = self.node_name(service);
        let hash = name_hash(&node);
        if !Arc::ptr_eq(&node, &self.overflow) {
            self.recent_services
                .put(service.clone(), (node.clone(), hash));
        }
        (node, hash)
    }

    /// A span's operation's symbol and [`name_hash`]. Only served operations
    /// are admitted against `max_operations`; a CLIENT span's name is
    /// interned for trace assembly alone. Remembered by the addresses of the
    /// service and the span name, which a decoded request shares between its
    /// spans; a served operation is then read there with [`served_op`].
    fn span_operation(&mut self, service: &Arc<str>, name: &Arc<str>, inbound: bool) -> (Sym, u64) {
        let known = if inbound {
            let address = pair_address(service, name);
            self.recent_served.find(address, |(s, n)| {
                Arc::ptr_eq(s, service) && Arc::ptr_eq(n, name)
            })
        } else {
            self.recent_called.get(name)
        };
        if let Some(&(_, sym, hash)) = known {
            return (sym, hash);
        }
        let op = if inbound {
            self.operation(service, name)
        } else {
            self.intern_op(name)
        };
        let (sym, hash) = (self.names.sym(&op), name_hash(&op));
        if !Arc::ptr_eq(&op, &self.overflow) {
            if inbound {
                let served = (service.clone(), name.clone());
                self.recent_served.put(served, (op, sym, hash));
            } else {
                self.recent_called.put(name.clone(), (op, sym, hash));
            }
        }
        (sym, hash)
    }

    /// The interned, admitted name for a node (or the overflow node).
    fn node_name(&mut self, name: &str) -> Arc<str> {
        admitted_name(&mut self.known, &self.limits, &self.overflow, name)
    }

    /// An operation name, interned without admitting it (bounded like the
    /// admitted set: past the cap, names are allocated per span).
    fn intern_op(&mut self, op: &str) -> Arc<str> {
        if let Some(known) = self.op_names.get(op) {
            return known.clone();
        }
        let name: Arc<str> = op.into();
        if self.op_names.len() < self.limits.settings().max_operations {
            self.op_names.insert(name.clone());
        }
        name
    }

    fn operation(&mut self, node: &Arc<str>, op: &str) -> Arc<str> {
        // Look up without allocating: operations repeat on nearly every span.
        let name = self.op_names.get(op).cloned().unwrap_or_else(|| op.into());
        let probe = (node.clone(), name);
        if self.known_ops.contains(&probe) {
            return probe.1;
        }
        if !self.limits.admit_operation(&probe.0, &probe.1) {
            return self.overflow.clone();
        }
        self.op_names.insert(probe.1.clone());
        self.known_ops.insert(probe.clone());
        probe.1
    }
}

/// What a settled boundary updates: the current window's edges and
/// virtual nodes, with the admitted names and edges they are counted
/// under. Borrowed from the [`Shard`] beside its pairing store, so the
/// store hands each pair straight here (see [`Outcomes`]).
struct Boundaries<'a> {
    windows: &'a mut Windows,
    known: &'a mut HashSet<Arc<str>, ahash::RandomState>,
    known_edges: &'a mut AdmittedEdges,
    limits: &'a Limits,
    overflow: &'a Arc<str>,
    now_ms: u64,
}

impl Outcomes for Boundaries<'_> {
    fn pair(&mut self, client: ClientSide, server: ServerSide) {
        let messaging = client.producer || server.consumer;
        let kind = if messaging {
            EdgeKind::Messaging
        } else {
            EdgeKind::Rpc
        };
        let (key, hash) = self.edge_key(client.service, server.service, kind);
        let window = self.windows.current(self.now_ms);
        let edge = window.edge_hashed(&key, hash);
        edge.calls += 1;
        edge.errors += u64::from(client.failed || server.failed);
        edge.timeouts += u64::from(client.timeout || server.timeout);
        edge.client.record(client.duration_ns);
        edge.server.record(server.duration_ns);
        if !messaging {
            return;
        }
        let lag = server.start_unix_nano.saturating_sub(client.end_unix_nano);
        if server.start_unix_nano >= client.end_unix_nano {
            edge.queue.record(lag);
        }
        let Some(name) = server.destination.or(client.destination) else {
            return;
        };
        let d = window.destination(&name);
        d.lag.record(lag);
        if d.deliveries.len() < MAX_DELIVERIES {
            d.deliveries.push(Delivery {
                key: server.key.or(client.key),
                produced_ns: client.end_unix_nano,
                consumed_ns: server.start_unix_nano,
            });
        }
    }

    fn to_peer(&mut self, client: ClientSide, peer: PeerNode) {
        let target = self.virtual_node(&peer);
        let (key, hash) = self.edge_key(client.service, target.clone(), edge_kind_to(peer.kind));
        let window = self.windows.current(self.now_ms);
        let edge = window.edge_hashed(&key, hash);
        edge.calls += 1;
        edge.errors += u64::from(client.failed);
        edge.timeouts += u64::from(client.timeout);
        edge.client.record(client.duration_ns);
        let node = window.node(&target, peer.kind);
        node.stats.calls.record(client.duration_ns, client.failed);
    }
}

impl Boundaries<'_> {
    /// A root span's edge, from the peer it names (or "user").
    fn root_edge(&mut self, caller: PeerNode, server: ServerSide) {
        let source = self.virtual_node(&caller);
        let (key, hash) = self.edge_key(source, server.service, edge_kind_to(caller.kind));
        let edge = self.windows.current(self.now_ms).edge_hashed(&key, hash);
        edge.calls += 1;
        edge.errors += u64::from(server.failed);
        edge.timeouts += u64::from(server.timeout);
        // The caller's own latency is unknown; the server's is the best bound.
        edge.client.record(server.duration_ns);
        edge.server.record(server.duration_ns);
    }

    /// Registers a virtual node in the current window and returns its name.
    fn virtual_node(&mut self, peer: &PeerNode) -> Arc<str> {
        let name = admitted_name(self.known, self.limits, self.overflow, &peer.name);
        let node = self.windows.current(self.now_ms).node(&name, peer.kind);
        if node.system.is_none() {
            node.system.clone_from(&peer.system);
        }
        name
    }

    fn edge_key(&mut self, source: Arc<str>, target: Arc<str>, kind: EdgeKind) -> (EdgeKey, u64) {
        self.known_edges
            .key(self.limits, self.overflow, source, target, kind)
    }
}

/// The interned, admitted name for a node (or the overflow node).
fn admitted_name(
    known: &mut HashSet<Arc<str>, ahash::RandomState>,
    limits: &Limits,
    overflow: &Arc<str>,
    name: &str,
) -> Arc<str> {
    if let Some(known) = known.get(name) {
        return known.clone();
    }
    let name: Arc<str> = name.into();
    if !limits.admit_node(&name) {
        return overflow.clone();
    }
    known.insert(name.clone());
    name
}

/// The operation [`Shard::span_operation`] found for a served span: its
/// remembered entry, which a span admitted to its own operation always
/// has just after, or else the overflow operation.
///
/// Why a borrow and not the `Arc` that `span_operation` could return: the
/// clone and its drop are two locked instructions per span, and by `perf
/// annotate` the drop at the end of [`Shard::ingest`] held 12% of its
/// samples, waiting for the stores before it.
fn served_op<'a>(
    recent: &'a Recent<(Arc<str>, Arc<str>), Operation>,
    overflow: &'a Arc<str>,
    service: &Arc<str>,
    name: &Arc<str>,
) -> &'a Arc<str> {
    recent
        .find(pair_address(service, name), |(s, n)| {
            Arc::ptr_eq(s, service) && Arc::ptr_eq(n, name)
        })
        .map_or(overflow, |(op, _, _)| op)
}

/// A messaging span's destination and ordering key ([`Shard::message_of`]).
type Message = (Option<Arc<str>>, Option<Arc<str>>);

/// The caller's side of `span`, built where it is handed over.
///
/// Why not built into a variable first and then passed: the move from that
/// variable read it back with 16-byte loads just after the 8- and 1-byte
/// stores that wrote it, and such a load cannot take its bytes from stores
/// still pending; it waits until they reach the cache. By `perf annotate`,
/// the three such moves of the sides held 29% of `Shard::ingest`'s own
/// samples; built here, in the call's argument, they are copied only
/// after the callee has looked up its slot.
#[inline(always)]
fn client_side(
    span: &Span,
    service: Arc<str>,
    failed: bool,
    peer: Option<PeerNode>,
    (destination, key): Message,
) -> ClientSide {
    ClientSide {
        service,
        duration_ns: span.duration_nanos(),
        end_unix_nano: span.end_unix_nano,
        failed,
        peer,
        producer: span.kind == SpanKind::Producer,
        timeout: failed && span.is_timeout(),
        destination,
        key,
    }
}

/// The callee's side of `span` (see [`client_side`]).
#[inline(always)]
fn server_side(
    span: &Span,
    service: Arc<str>,
    failed: bool,
    (destination, key): Message,
) -> ServerSide {
    ServerSide {
        service,
        duration_ns: span.duration_nanos(),
        start_unix_nano: span.start_unix_nano,
        failed,
        consumer: span.kind == SpanKind::Consumer,
        timeout: failed && span.is_timeout(),
        destination,
        key,
    }
}

fn edge_kind_to(kind: NodeKind) -> EdgeKind {
    match kind {
        NodeKind::Database => EdgeKind::Database,
        NodeKind::Messaging => EdgeKind::Messaging,
        NodeKind::Service | NodeKind::External => EdgeKind::External,
    }
}

/// The edges a shard has admitted against `max_edges`, with the recently
/// used ones remembered (with their [`name_hash`]) by the addresses of
/// their (interned) names, so a span's edge is usually found without
/// hashing its names' text.
#[derive(Default)]
struct AdmittedEdges {
    known: HashSet<EdgeKey, ahash::RandomState>,
    recent: Recent<EdgeKey, u64>,
}

impl AdmittedEdges {
    /// The key an edge is counted under, and its [`name_hash`]: its own
    /// once admitted, else the overflow edge.
    fn key(
        &mut self,
        limits: &Limits,
        overflow: &Arc<str>,
        source: Arc<str>,
        target: Arc<str>,
        kind: EdgeKind,
    ) -> (EdgeKey, u64) {
        let key = EdgeKey {
            source,
            target,
            kind,
        };
        if let Some(&hash) = self.recent.get(&key) {
            return (key, hash);
        }
        if !self.known.contains(&key) {
            if !limits.admit_edge(&key) {
                let key = EdgeKey {
                    source: overflow.clone(),
                    target: overflow.clone(),
                    kind,
                };
                let hash = name_hash(&key);
                return (key, hash);
            }
            self.known.insert(key.clone());
        }
        let hash = name_hash(&key);
        self.recent.put(key.clone(), hash);
        (key, hash)
    }
}
