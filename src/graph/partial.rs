//! [`WindowPartial`]: one window's nodes and edges, as one shard saw them.
//!
//! Partials are the unit of merging: shards, windows (and later, aggregators
//! on other machines) each hold partials, and a read merges them.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::hash_map::{Entry, RawEntryMut};
use hashbrown::HashMap;

use serde::{Deserialize, Serialize};

use super::stats::{ClusterStats, DestinationStats, EdgeStats, NodeStats, PathStats};

/// What a node stands for. Only `Service` nodes send spans; the others are
/// virtual, named from the callers' attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Service,
    Database,
    Messaging,
    External,
}

/// What crosses an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// A CLIENT span paired with its SERVER span.
    Rpc,
    /// A PRODUCER span paired with a CONSUMER span.
    Messaging,
    /// A CLIENT span to a database or cache (no server side is expected).
    Database,
    /// A call from or to a peer that sends no spans.
    External,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub source: Arc<str>,
    pub target: Arc<str>,
    pub kind: EdgeKind,
}

/// A node's identity plus its statistics in one window.
#[derive(Clone)]
pub struct NodeEntry {
    pub kind: NodeKind,
    /// `db.system` / `messaging.system` of a virtual node (`redis`, `kafka`).
    pub system: Option<Arc<str>>,
    /// `k8s.namespace.name` and `k8s.deployment.name` of a service's resource.
    pub k8s_namespace: Option<Arc<str>>,
    pub k8s_deployment: Option<Arc<str>>,
    pub stats: NodeStats,
}

/// The maps of a partial hash with ahash: they are touched on every span,
/// and SipHash (std's default, built against hash flooding) was a third of
/// aggregation time; keys here are names the shard already admitted.
/// (foldhash, which hashes the pairing store's ids for fewer instructions,
/// took more than ahash on these names: 35.7 M against 23.9 M instructions
/// in `WindowPartial::edge` by callgrind.)
pub type FastMap<K, V> = HashMap<K, V, NameHasher>;

/// The hasher of every partial's maps: ahash, seeded once per process
/// rather than once per map. Why: a name then hashes the same in every
/// window, so the shard hashes its hot names once (a service, an
/// operation, an admitted edge, remembered by address in
/// [`super::recent::Recent`]) and finds them in each window by that hash
/// ([`find_or_insert_hashed`]). Hashing the text on every lookup was about
/// a third of the window's node and edge lookups. The seed is still random
/// per process, so the keys senders choose cannot be aimed at collisions.
#[derive(Clone, Copy, Default, Debug)]
pub struct NameHasher;

static NAME_SEEDS: std::sync::LazyLock<ahash::RandomState> =
    std::sync::LazyLock::new(ahash::RandomState::new);

impl BuildHasher for NameHasher {
    type Hasher = ahash::AHasher;

    #[inline]
    fn build_hasher(&self) -> ahash::AHasher {
        NAME_SEEDS.build_hasher()
    }
}

/// `key`'s hash in every [`FastMap`], for [`find_or_insert_hashed`].
#[inline]
pub fn name_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    NameHasher.hash_one(key)
}

/// A key of a live window's maps: names the shard interned, so the key
/// looked up is usually the very allocation the map holds.
pub trait Interned: Hash + Eq + Clone {
    /// `self == other`, by address first: that spares comparing the text
    /// (a `memcmp` call per lookup, about 2% of aggregation).
    fn same(&self, other: &Self) -> bool;
}

/// Every interned name and path is an `Arc`: one impl covers `Arc<str>`
/// and [`PathKey`].
impl<T: ?Sized + Hash + Eq> Interned for Arc<T> {
    #[inline]
    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(self, other) || self == other
    }
}

impl Interned for EdgeKey {
    #[inline]
    fn same(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.source.same(&other.source)
            && self.target.same(&other.target)
    }
}

/// The value under `key`, inserted with `new` when first seen: one lookup,
/// and the key is cloned only when it is new.
#[inline]
pub fn find_or_insert<'m, K: Interned, V>(
    map: &'m mut FastMap<K, V>,
    key: &K,
    new: impl FnOnce() -> V,
) -> &'m mut V {
    find_or_insert_hashed(map, key, name_hash(key), new)
}

/// As [`find_or_insert`], for a map bounded at `max` entries: `None` when
/// `key` is new and the map is full.
#[inline]
pub fn find_or_insert_within<'m, K: Interned, V>(
    map: &'m mut FastMap<K, V>,
    key: &K,
    max: usize,
    new: impl FnOnce() -> V,
) -> Option<&'m mut V> {
    find_hashed_within(map, key, name_hash(key), max, new)
}

/// [`find_or_insert`] with `key`'s [`name_hash`] already known.
#[inline]
pub fn find_or_insert_hashed<'m, K: Interned, V>(
    map: &'m mut FastMap<K, V>,
    key: &K,
    hash: u64,
    new: impl FnOnce() -> V,
) -> &'m mut V {
    find_hashed_within(map, key, hash, usize::MAX, new).expect("an unbounded map always has room")
}

/// [`find_or_insert_within`] with `key`'s [`name_hash`] already known.
#[inline]
pub fn find_hashed_within<'m, K: Interned, V>(
    map: &'m mut FastMap<K, V>,
    key: &K,
    hash: u64,
    max: usize,
    new: impl FnOnce() -> V,
) -> Option<&'m mut V> {
    debug_assert_eq!(hash, name_hash(key), "a hash passed in is the key's own");
    let full = map.len() >= max;
    match map.raw_entry_mut().from_hash(hash, |k| k.same(key)) {
        RawEntryMut::Occupied(e) => Some(e.into_mut()),
        RawEntryMut::Vacant(_) if full => None,
        RawEntryMut::Vacant(e) => Some(e.insert_hashed_nocheck(hash, key.clone(), new()).1),
    }
}

/// A path's nodes, root first.
pub type PathKey = Arc<[Arc<str>]>;

#[derive(Clone, Default)]
pub struct WindowPartial {
    pub nodes: FastMap<Arc<str>, NodeEntry>,
    pub edges: FastMap<EdgeKey, EdgeStats>,
    pub paths: FastMap<PathKey, PathStats>,
    /// By signature hash (see `graph::traces::Recorder`).
    pub clusters: FastMap<u64, ClusterStats>,
    pub destinations: FastMap<Arc<str>, DestinationStats>,
}

impl WindowPartial {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.edges.is_empty()
            && self.paths.is_empty()
            && self.clusters.is_empty()
            && self.destinations.is_empty()
    }

    pub fn destination(&mut self, name: &Arc<str>) -> &mut DestinationStats {
        find_or_insert(&mut self.destinations, name, DestinationStats::default)
    }

    /// The node's entry, created with zero counts when first seen.
    /// Entries held, as the window retention budget counts them.
    pub fn entries(&self) -> usize {
        self.nodes.len()
            + self.edges.len()
            + self.paths.len()
            + self.clusters.len()
            + self.destinations.len()
    }

    pub fn node(&mut self, name: &Arc<str>, kind: NodeKind) -> &mut NodeEntry {
        find_or_insert(&mut self.nodes, name, || NodeEntry::new(kind, None))
    }

    pub fn edge(&mut self, key: &EdgeKey) -> &mut EdgeStats {
        find_or_insert(&mut self.edges, key, EdgeStats::default)
    }

    /// [`WindowPartial::node`], by the name's [`name_hash`].
    pub fn node_hashed(&mut self, name: &Arc<str>, hash: u64, kind: NodeKind) -> &mut NodeEntry {
        find_or_insert_hashed(&mut self.nodes, name, hash, || NodeEntry::new(kind, None))
    }

    /// [`WindowPartial::edge`], by the key's [`name_hash`].
    pub fn edge_hashed(&mut self, key: &EdgeKey, hash: u64) -> &mut EdgeStats {
        find_or_insert_hashed(&mut self.edges, key, hash, EdgeStats::default)
    }

    pub fn merge(&mut self, other: &WindowPartial) {
        for (name, entry) in &other.nodes {
            match self.nodes.get_mut(name) {
                Some(mine) => mine.merge(entry),
                None => {
                    self.nodes.insert(name.clone(), entry.clone());
                }
            }
        }
        for (key, stats) in &other.edges {
            self.edge(key).merge(stats);
        }
        for (key, stats) in &other.paths {
            self.paths.entry(key.clone()).or_default().merge(stats);
        }
        for (key, stats) in &other.clusters {
            self.clusters.entry(*key).or_default().merge(stats);
        }
        for (name, stats) in &other.destinations {
            self.destination(name).merge(stats);
        }
    }

    /// Merges `other` into the history (everything since start), which is
    /// bounded: nodes, edges and operations are by the global caps, but a
    /// path or cluster is a new key for nearly every trace when services
    /// call many others (10^5 edges), and per-window caps alone let the
    /// history grow by `max_paths` entries per window for good. So new paths
    /// and clusters, and destinations, enter only while fewer than `caps`
    /// are held; those held stay exact, as with the per-window cap.
    ///
    /// `other` is consumed: what is new here moves in rather than being
    /// cloned (this runs on the shard's thread for every evicted window).
    pub fn fold(&mut self, other: WindowPartial, caps: &HistoryCaps) {
        fold_capped(&mut self.nodes, other.nodes, usize::MAX, NodeEntry::merge);
        fold_capped(&mut self.edges, other.edges, usize::MAX, EdgeStats::merge);
        fold_capped(&mut self.paths, other.paths, caps.paths, PathStats::merge);
        fold_capped(
            &mut self.clusters,
            other.clusters,
            caps.paths,
            ClusterStats::merge,
        );
        fold_capped(
            &mut self.destinations,
            other.destinations,
            caps.destinations,
            DestinationStats::merge,
        );
    }

    /// Bytes this partial holds on the heap, estimated: the maps' tables
    /// and what their entries own (histograms, operations, path shares).
    /// Names are interned `Arc`s shared with the shard, so not counted.
    pub fn heap_bytes(&self) -> usize {
        let nodes: usize = self
            .nodes
            .values()
            .map(|n| {
                n.stats.calls.latency.heap_bytes()
                    + table_bytes(&n.stats.operations)
                    + n.stats
                        .operations
                        .values()
                        .map(|o| o.latency.heap_bytes())
                        .sum::<usize>()
            })
            .sum();
        let edges: usize = self
            .edges
            .values()
            .map(|e| e.client.heap_bytes() + e.server.heap_bytes() + e.queue.heap_bytes())
            .sum();
        let paths: usize = self
            .paths
            .values()
            .map(|p| p.latency.heap_bytes() + p.share_sums.capacity() * 8)
            .sum();
        let clusters: usize = self.clusters.values().map(|c| c.latency.heap_bytes()).sum();
        let destinations: usize = self
            .destinations
            .values()
            .map(|d| {
                d.lag.heap_bytes()
                    + d.deliveries.capacity() * std::mem::size_of::<super::stats::Delivery>()
                    + (d.producers.capacity() + d.consumers.capacity()) * 16
            })
            .sum();
        table_bytes(&self.nodes)
            + table_bytes(&self.edges)
            + table_bytes(&self.paths)
            + table_bytes(&self.clusters)
            + table_bytes(&self.destinations)
            + nodes
            + edges
            + paths
            + clusters
            + destinations
    }

    /// Drops what only recent windows keep (deliveries), before folding
    /// into the long-term history.
    pub fn forget_details(&mut self) {
        self.destinations
            .values_mut()
            .for_each(|d| d.deliveries = Vec::new());
    }

    /// Shrinks the histograms to their encoded form once the window is closed.
    pub fn compact(&mut self) {
        self.nodes.values_mut().for_each(|n| n.stats.compact());
        self.edges.values_mut().for_each(EdgeStats::compact);
        for p in self.paths.values_mut() {
            p.latency.compact();
        }
        for c in self.clusters.values_mut() {
            c.latency.compact();
        }
        self.destinations
            .values_mut()
            .for_each(DestinationStats::compact);
    }
}

/// What the history keeps of entries no global cap bounds (see
/// [`WindowPartial::fold`]).
#[derive(Debug, Clone, Copy)]
pub struct HistoryCaps {
    /// Distinct paths, and distinct clusters.
    pub paths: usize,
    pub destinations: usize,
}

impl Default for HistoryCaps {
    fn default() -> Self {
        HistoryCaps {
            paths: usize::MAX,
            destinations: usize::MAX,
        }
    }
}

fn fold_capped<K, V>(
    mine: &mut FastMap<K, V>,
    theirs: FastMap<K, V>,
    cap: usize,
    merge: impl Fn(&mut V, &V),
) where
    K: std::hash::Hash + Eq,
{
    if mine.is_empty() && theirs.len() <= cap {
        *mine = theirs;
        return;
    }
    for (key, stats) in theirs {
        let held = mine.len();
        match mine.entry(key) {
            Entry::Occupied(e) => merge(e.into_mut(), &stats),
            Entry::Vacant(e) if held < cap => {
                e.insert(stats);
            }
            Entry::Vacant(_) => {}
        }
    }
}

/// A hash table's own allocation: its slots and control bytes.
fn table_bytes<K, V>(map: &FastMap<K, V>) -> usize {
    map.capacity() * (std::mem::size_of::<(K, V)>() + 1)
}

impl NodeEntry {
    pub fn new(kind: NodeKind, system: Option<Arc<str>>) -> NodeEntry {
        NodeEntry {
            kind,
            system,
            k8s_namespace: None,
            k8s_deployment: None,
            stats: NodeStats::default(),
        }
    }

    fn merge(&mut self, other: &NodeEntry) {
        // A name first seen as a virtual peer may later send spans itself:
        // the service identity wins, since it is what the user deploys.
        if other.kind == NodeKind::Service {
            self.kind = NodeKind::Service;
        }
        if self.system.is_none() {
            self.system.clone_from(&other.system);
        }
        if self.k8s_namespace.is_none() {
            self.k8s_namespace.clone_from(&other.k8s_namespace);
        }
        if self.k8s_deployment.is_none() {
            self.k8s_deployment.clone_from(&other.k8s_deployment);
        }
        self.stats.merge(&other.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_equal_in_text_but_not_in_address_finds_the_same_entry() {
        // Shards intern names apart, so a merge looks up another shard's
        // allocation of the same name: the address check must fall back
        // on the text.
        let mut window = WindowPartial::default();
        let (a, b): (Arc<str>, Arc<str>) = ("checkout".into(), "checkout".into());
        assert!(!Arc::ptr_eq(&a, &b));
        window
            .node(&a, NodeKind::Service)
            .stats
            .calls
            .record(1_000, false);
        window
            .node(&b, NodeKind::Service)
            .stats
            .calls
            .record(2_000, true);
        assert_eq!(window.nodes.len(), 1);
        let edge = |source: &Arc<str>, kind| EdgeKey {
            source: source.clone(),
            target: "db".into(),
            kind,
        };
        window.edge(&edge(&a, EdgeKind::Rpc)).calls += 1;
        window.edge(&edge(&b, EdgeKind::Rpc)).calls += 1;
        window.edge(&edge(&a, EdgeKind::Database)).calls += 1;
        assert_eq!(window.edges.len(), 2);
        assert_eq!(window.edges[&edge(&b, EdgeKind::Rpc)].calls, 2);
        let path: PathKey = vec![a.clone(), "db".into()].into();
        let same_text: PathKey = vec![b.clone(), "db".into()].into();
        assert!(path.same(&same_text) && !path.same(&vec![a.clone()].into()));
    }
}
