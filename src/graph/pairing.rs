//! The pairing store: holds one side of a boundary until the other arrives.
//!
//! A CLIENT (or PRODUCER) span is stored under its own span id; a SERVER (or
//! CONSUMER) span under its parent's id, or under the ids of the producers
//! it links to. When both sides of a key are present the pair becomes an
//! edge. Spans may arrive in any order, in different requests: whichever side
//! comes first waits, for at most the TTL. What expires unpaired becomes an
//! edge to a virtual node when the caller named its peer, and is otherwise
//! counted — never silently dropped.

use hashbrown::hash_map::{Entry, OccupiedEntry, VacantEntry};
use hashbrown::HashMap;
use std::sync::Arc;

use serde::Serialize;
use smallvec::SmallVec;

use super::naming::PeerNode;
use crate::model::{SpanId, TraceId};

pub type PairKey = (TraceId, SpanId);

/// The caller's side of a boundary.
#[derive(Debug, Clone)]
pub struct ClientSide {
    pub service: Arc<str>,
    pub duration_ns: u64,
    pub end_unix_nano: u64,
    pub failed: bool,
    /// The peer the caller named, used if no server side ever arrives.
    pub peer: Option<PeerNode>,
    /// A PRODUCER: may pair with several consumers, so it stays until its TTL.
    pub producer: bool,
    pub timeout: bool,
    /// Messaging: the destination and the message's ordering key.
    pub destination: Option<Arc<str>>,
    pub key: Option<Arc<str>>,
}

/// The callee's side of a boundary.
#[derive(Debug, Clone)]
pub struct ServerSide {
    pub service: Arc<str>,
    pub duration_ns: u64,
    pub start_unix_nano: u64,
    pub failed: bool,
    pub consumer: bool,
    pub timeout: bool,
    pub destination: Option<Arc<str>>,
    pub key: Option<Arc<str>>,
}

/// Where [`PairingStore`] hands what it paired: both sides of a boundary,
/// or a caller whose peer never sent spans (its edge goes to a virtual
/// node).
///
/// Why a trait and not a vector of outcomes: a shard records a pair as the
/// store finds it, so the two sides (about 200 bytes) are not pushed into
/// a vector and drained from it again, two copies per pair that a profile
/// put at about 3% of the server's cycles. The tests collect them.
pub trait Outcomes {
    fn pair(&mut self, client: ClientSide, server: ServerSide);
    fn to_peer(&mut self, client: ClientSide, peer: PeerNode);
}

/// Counts of what happened to stored spans, shown by the API and `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PairingCounters {
    /// Spans waiting for their other side right now.
    pub pending: u64,
    /// Boundaries where both sides were seen.
    pub paired: u64,
    /// Expired CLIENT/PRODUCER spans turned into edges to a virtual node.
    pub expired_to_virtual: u64,
    /// Expired CLIENT/PRODUCER spans with no peer to name (no edge).
    pub expired_client: u64,
    /// Expired SERVER/CONSUMER spans whose caller never arrived (no edge).
    pub expired_server: u64,
    /// Spans not stored because the store was full (`max_items`).
    pub dropped: u64,
}

impl PairingCounters {
    pub fn merge(&mut self, other: &PairingCounters) {
        self.pending += other.pending;
        self.paired += other.paired;
        self.expired_to_virtual += other.expired_to_virtual;
        self.expired_client += other.expired_client;
        self.expired_server += other.expired_server;
        self.dropped += other.dropped;
    }
}

struct Pending {
    deadline_ms: u64,
    client: Option<ClientSide>,
    /// Inline for the usual one: a heap `Vec` here was an allocation for
    /// every call whose server span arrived first.
    servers: SmallVec<[ServerSide; 1]>,
    /// A producer that already paired with a consumer.
    matched: bool,
}

/// The pairing map's hasher (see [`PairingStore::map`]).
type IdHasher = foldhash::fast::RandomState;

enum Slot<'a> {
    Full,
    Vacant(VacantEntry<'a, PairKey, Pending, IdHasher>),
    Occupied(OccupiedEntry<'a, PairKey, Pending, IdHasher>),
}

impl Pending {
    #[inline]
    fn with_client(deadline_ms: u64, client: ClientSide) -> Pending {
        Pending {
            deadline_ms,
            client: Some(client),
            servers: SmallVec::new(),
            matched: false,
        }
    }

    #[inline]
    fn with_server(deadline_ms: u64, server: ServerSide) -> Pending {
        Pending {
            deadline_ms,
            client: None,
            servers: SmallVec::from_buf([server]),
            matched: false,
        }
    }
}

pub struct PairingStore {
    /// Keyed by ids the senders chose, hashed with a per-process seed
    /// (foldhash: two folded multiplies for the 24-byte key, where ahash's
    /// portable fallback spent about a hundred instructions per lookup).
    /// hashbrown's own map rather than std's, for its `inline-more`: std's
    /// entry call was inlined into the hot path in one build and not in the
    /// next, as the crate around it changed.
    map: HashMap<PairKey, Pending, IdHasher>,
    ttl_ms: u64,
    max_items: usize,
    counters: PairingCounters,
}

impl PairingStore {
    pub fn new(ttl_ms: u64, max_items: usize) -> PairingStore {
        PairingStore {
            map: HashMap::default(),
            ttl_ms,
            max_items,
            counters: PairingCounters::default(),
        }
    }

    pub fn counters(&self) -> PairingCounters {
        PairingCounters {
            pending: self.map.len() as u64,
            ..self.counters
        }
    }

    /// Stores or pairs a caller's side. One hash lookup: the first side of
    /// a pair inserts, the second finds and (usually) removes in place.
    /// Inlined into the shard's span loop, where it runs once per CLIENT
    /// or PRODUCER span.
    #[inline]
    pub fn add_client(
        &mut self,
        key: PairKey,
        client: ClientSide,
        now_ms: u64,
        out: &mut impl Outcomes,
    ) {
        let deadline = now_ms.saturating_add(self.ttl_ms);
        let mut entry = match self.slot(key) {
            Slot::Full => return,
            Slot::Vacant(v) => {
                v.insert(Pending::with_client(deadline, client));
                return;
            }
            Slot::Occupied(o) => o,
        };
        let pending = entry.get_mut();
        if pending.servers.is_empty() {
            pending.client = Some(client);
            return;
        }
        if client.producer {
            for server in pending.servers.drain(..) {
                out.pair(client.clone(), server);
            }
            pending.matched = true;
            pending.client = Some(client);
        } else {
            // The usual case, one server: the client moves into its pair.
            let mut servers = entry.remove().servers;
            let last = servers.pop().expect("checked not empty above");
            for server in servers {
                out.pair(client.clone(), server);
            }
            out.pair(client, last);
        }
        self.counters.paired += 1;
    }

    /// Stores or pairs a callee's side (see [`PairingStore::add_client`]).
    /// Inlined as [`PairingStore::add_client`] is.
    #[inline]
    pub fn add_server(
        &mut self,
        key: PairKey,
        server: ServerSide,
        now_ms: u64,
        out: &mut impl Outcomes,
    ) {
        let deadline = now_ms.saturating_add(self.ttl_ms);
        let mut entry = match self.slot(key) {
            Slot::Full => return,
            Slot::Vacant(v) => {
                v.insert(Pending::with_server(deadline, server));
                return;
            }
            Slot::Occupied(o) => o,
        };
        let pending = entry.get_mut();
        let Some(client) = &pending.client else {
            pending.servers.push(server);
            return;
        };
        // A producer stays for further consumers; it counts as paired once.
        let first_match = !pending.matched;
        if client.producer {
            out.pair(client.clone(), server);
            pending.matched = true;
        } else if let Some(client) = entry.remove().client {
            out.pair(client, server);
        }
        if first_match {
            self.counters.paired += 1;
        }
    }

    /// The map's entry for `key`, or `Full` (counted) if a new entry has no room.
    fn slot(&mut self, key: PairKey) -> Slot<'_> {
        let full = self.map.len() >= self.max_items;
        match self.map.entry(key) {
            Entry::Occupied(o) => Slot::Occupied(o),
            Entry::Vacant(_) if full => {
                self.counters.dropped += 1;
                Slot::Full
            }
            Entry::Vacant(v) => Slot::Vacant(v),
        }
    }

    /// Expires every entry whose TTL ended at `now_ms`.
    ///
    /// A sweep over the pending map, once per tick: pairs that completed are
    /// already gone from it, so the sweep costs what is actually waiting,
    /// and no per-span bookkeeping outlives its pair.
    pub fn expire(&mut self, now_ms: u64, out: &mut impl Outcomes) {
        let expired: Vec<Pending> = self
            .map
            .extract_if(|_, p| p.deadline_ms <= now_ms)
            .map(|(_, p)| p)
            .collect();
        for pending in expired {
            self.settle(pending, out);
        }
    }

    /// Expires everything now (end of an offline import, shutdown).
    pub fn expire_all(&mut self, out: &mut impl Outcomes) {
        self.expire(u64::MAX, out);
    }

    fn settle(&mut self, pending: Pending, out: &mut impl Outcomes) {
        self.counters.expired_server += pending.servers.len() as u64;
        let Some(client) = pending.client else { return };
        if pending.matched {
            return;
        }
        match client.peer.clone() {
            Some(peer) => {
                self.counters.expired_to_virtual += 1;
                out.to_peer(client, peer);
            }
            None => self.counters.expired_client += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::partial::NodeKind;

    /// What pairing produced, as the tests collect it: the services on
    /// either side, or the caller's service and its peer.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Pair(Arc<str>, Arc<str>),
        ToPeer(Arc<str>, Arc<str>),
    }

    impl Outcomes for Vec<Outcome> {
        fn pair(&mut self, client: ClientSide, server: ServerSide) {
            self.push(Outcome::Pair(client.service, server.service));
        }

        fn to_peer(&mut self, client: ClientSide, peer: PeerNode) {
            self.push(Outcome::ToPeer(client.service, peer.name));
        }
    }

    fn client(producer: bool, peer: Option<&str>) -> ClientSide {
        ClientSide {
            service: "a".into(),
            duration_ns: 10,
            end_unix_nano: 100,
            failed: false,
            peer: peer.map(|p| PeerNode {
                name: p.into(),
                kind: NodeKind::External,
                system: None,
            }),
            producer,
            timeout: false,
            destination: None,
            key: None,
        }
    }

    fn server(name: &str) -> ServerSide {
        ServerSide {
            service: name.into(),
            duration_ns: 5,
            start_unix_nano: 120,
            failed: false,
            consumer: false,
            timeout: false,
            destination: None,
            key: None,
        }
    }

    #[test]
    fn pairs_in_either_order() {
        let mut s = PairingStore::new(1000, 10);
        let mut out = vec![];
        s.add_server(([1; 16], [1; 8]), server("b"), 0, &mut out);
        assert!(out.is_empty());
        s.add_client(([1; 16], [1; 8]), client(false, None), 5, &mut out);
        assert_eq!(out, [Outcome::Pair("a".into(), "b".into())]);
        s.add_client(([2; 16], [1; 8]), client(false, None), 5, &mut out);
        s.add_server(([2; 16], [1; 8]), server("b"), 6, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(s.counters().pending, 0);
        assert_eq!(s.counters().paired, 2);
    }

    #[test]
    fn producers_pair_with_every_consumer() {
        let mut s = PairingStore::new(1000, 10);
        let mut out = vec![];
        let key = ([1; 16], [1; 8]);
        s.add_server(key, server("c1"), 0, &mut out);
        s.add_client(key, client(true, None), 1, &mut out);
        s.add_server(key, server("c2"), 2, &mut out);
        assert_eq!(out.len(), 2);
        s.expire(2000, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(s.counters().expired_client, 0);
    }

    #[test]
    fn expiry_makes_virtual_edges_or_counts() {
        let mut s = PairingStore::new(1000, 2);
        let mut out = vec![];
        s.add_client(([1; 16], [1; 8]), client(false, Some("geo")), 0, &mut out);
        s.add_server(([1; 16], [2; 8]), server("b"), 0, &mut out);
        s.add_server(([1; 16], [3; 8]), server("b"), 0, &mut out);
        s.expire(999, &mut out);
        assert!(out.is_empty());
        s.expire(1000, &mut out);
        assert_eq!(out[0], Outcome::ToPeer("a".into(), "geo".into()));
        let c = s.counters();
        assert_eq!(
            (c.expired_to_virtual, c.expired_server, c.dropped, c.pending),
            (1, 1, 1, 0)
        );
    }
}
