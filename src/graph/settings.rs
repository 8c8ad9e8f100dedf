//! The graph's settings and its global caps.

use std::sync::Arc;

use dashmap::DashMap;

use super::naming::NamingRule;
use super::partial::EdgeKey;
use super::traces::TraceSettings;

/// How the graph is cut into windows, how long pairs wait and how large it may grow.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub window_ms: u64,
    pub windows_kept: usize,
    pub pairing_ttl_ms: u64,
    /// Per shard: pending spans waiting for their other side.
    pub max_pending: usize,
    pub max_nodes: usize,
    pub max_edges: usize,
    pub max_operations: usize,
    pub naming: NamingRule,
    pub shards: usize,
    pub traces: TraceSettings,
}

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings {
            window_ms: 1_000,
            windows_kept: 120,
            pairing_ttl_ms: 10_000,
            max_pending: 100_000,
            max_nodes: 10_000,
            max_edges: 100_000,
            max_operations: 100_000,
            naming: NamingRule::Tempo,
            shards: 2,
            traces: TraceSettings::default(),
        }
    }
}

/// The name every node, edge end and operation past its cap is counted under.
pub const OVERFLOW: &str = "__overflow__";

/// Global caps on distinct nodes, edges and operations, shared by shards.
///
/// Shards consult this only the first time they see a name, so the hot path
/// stays shard-local; the maps are sharded (dashmap) for the rare inserts.
pub struct Limits {
    settings: GraphSettings,
    nodes: DashMap<Arc<str>, ()>,
    edges: DashMap<EdgeKey, ()>,
    operations: DashMap<(Arc<str>, Arc<str>), ()>,
}

impl Limits {
    pub fn new(settings: GraphSettings) -> Limits {
        Limits {
            settings,
            nodes: DashMap::new(),
            edges: DashMap::new(),
            operations: DashMap::new(),
        }
    }

    pub fn settings(&self) -> &GraphSettings {
        &self.settings
    }

    pub fn admit_node(&self, name: &Arc<str>) -> bool {
        admit(&self.nodes, name, self.settings.max_nodes)
    }

    pub fn admit_edge(&self, key: &EdgeKey) -> bool {
        admit(&self.edges, key, self.settings.max_edges)
    }

    pub fn admit_operation(&self, node: &Arc<str>, op: &Arc<str>) -> bool {
        admit(
            &self.operations,
            &(node.clone(), op.clone()),
            self.settings.max_operations,
        )
    }

    /// Distinct (nodes, edges, operations) admitted so far.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.nodes.len(), self.edges.len(), self.operations.len())
    }
}

fn admit<K: std::hash::Hash + Eq + Clone>(map: &DashMap<K, ()>, key: &K, cap: usize) -> bool {
    if map.contains_key(key) {
        return true;
    }
    // Racing shards may overshoot the cap by at most one key each.
    if map.len() >= cap {
        return false;
    }
    map.insert(key.clone(), ());
    true
}
