//! [`ClosedMerge`]: the closed windows of the last read, merged once.
//!
//! A read of many windows (`/api/graph` reads all of them by default)
//! merges every closed window, the staged partials and the history, each
//! with its histograms, for every request. At a 1 s window that set
//! changes once a second, while a script or a dashboard may poll more
//! often: with a minute of windows held at 900 k spans/s, a read of
//! everything took 6 ms of the reader's CPU, on the core the receivers
//! need. So the merge of the shared (closed) partials is kept,
//! under the partials it was made from, and a read that finds the same
//! ones merges only the windows in progress into it.
//!
//! The partials are compared by address, through `Weak` references. A
//! `Weak` keeps the allocation (not the partial) alive, so an address it
//! names cannot be reused by another partial while the cache holds it. And
//! a `Weak` does not make a shard copy: when a window is evicted and folded
//! (`Windows::evict_oldest`), `Arc::unwrap_or_clone` and `Arc::make_mut`
//! copy a partial that a reader still holds strongly (tens of MiB at 10^5
//! edges, on the shard's thread), but only move one that is held weakly.
//! What changed that way has a new address, so the next read merges again.
//! The cache holds its merge for [`KEEP_MS`] after the last read, so a
//! graph nobody reads keeps no second copy.
//!
//! The reader merges the windows in progress first and this merge after
//! them. Counts and histograms add exactly in any order (float sums may
//! differ in their last bits); where windows disagree on a first-seen
//! value (a node's namespace, a destination's system) or fill a capped
//! list (a destination's clients and deliveries), the windows in progress
//! now come first, where with several shards they came after the first
//! shard's closed windows.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::partial::WindowPartial;

/// How long a merge is kept after its last read (ms).
pub const KEEP_MS: u64 = 2_000;

#[derive(Default)]
pub struct ClosedMerge {
    last: Mutex<Option<Kept>>,
}

struct Kept {
    /// The partials merged, in read order: the key.
    parts: Vec<Weak<WindowPartial>>,
    merged: Arc<WindowPartial>,
    read_ms: u64,
}

impl ClosedMerge {
    /// The merge of `parts`, from the last read when it had the very same
    /// partials. The merge itself runs outside the lock, so a slow one
    /// holds up neither another reader nor [`ClosedMerge::expire`].
    pub fn merged(&self, parts: &[Arc<WindowPartial>], now_ms: u64) -> Arc<WindowPartial> {
        if let Some(kept) = self.last.lock().as_mut().filter(|k| k.holds(parts)) {
            kept.read_ms = now_ms;
            return kept.merged.clone();
        }
        let mut merged = WindowPartial::default();
        parts.iter().for_each(|p| merged.merge(p));
        let merged = Arc::new(merged);
        *self.last.lock() = Some(Kept {
            parts: parts.iter().map(Arc::downgrade).collect(),
            merged: merged.clone(),
            read_ms: now_ms,
        });
        merged
    }

    /// Lets go of a merge not read for [`KEEP_MS`] (called every tick, on
    /// the receivers' runtime: it never waits for the lock).
    pub fn expire(&self, now_ms: u64) {
        let Some(mut last) = self.last.try_lock() else {
            return;
        };
        if last
            .as_ref()
            .is_some_and(|k| now_ms.saturating_sub(k.read_ms) >= KEEP_MS)
        {
            *last = None;
        }
    }
}

impl Kept {
    fn holds(&self, parts: &[Arc<WindowPartial>]) -> bool {
        self.parts.len() == parts.len()
            && self
                .parts
                .iter()
                .zip(parts)
                .all(|(kept, p)| std::ptr::eq(kept.as_ptr(), Arc::as_ptr(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::partial::{EdgeKey, EdgeKind};

    fn window(calls: u64) -> Arc<WindowPartial> {
        let mut p = WindowPartial::default();
        let key = EdgeKey {
            source: "a".into(),
            target: "b".into(),
            kind: EdgeKind::Rpc,
        };
        let edge = p.edge(&key);
        edge.calls += calls;
        (0..calls).for_each(|i| edge.client.record(1_000 * (i + 1)));
        Arc::new(p)
    }

    fn calls(p: &WindowPartial) -> u64 {
        p.edges.values().map(|e| e.calls).sum()
    }

    #[test]
    fn the_same_partials_are_merged_once_and_new_ones_again() {
        let cache = ClosedMerge::default();
        let (w1, w2, w3) = (window(1), window(2), window(4));
        let first = cache.merged(&[w1.clone(), w2.clone()], 0);
        assert_eq!(calls(&first), 3);
        let again = cache.merged(&[w1, w2.clone()], 10);
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same partials reuse the merge"
        );
        let moved = cache.merged(&[w2.clone(), w3.clone()], 30);
        assert_eq!(calls(&moved), 6);
        // Equal content at another address is another partial.
        let copy = Arc::new((*w3).clone());
        let other = cache.merged(&[w2, copy], 40);
        assert!(!Arc::ptr_eq(&moved, &other));
        assert_eq!(calls(&other), 6);
    }

    #[test]
    fn the_cache_holds_no_partial_strongly() {
        // Held strongly, an evicted window would be copied by its shard
        // (`Arc::unwrap_or_clone`) instead of moved.
        let cache = ClosedMerge::default();
        let w = window(1);
        cache.merged(std::slice::from_ref(&w), 0);
        assert_eq!(Arc::strong_count(&w), 1);
        let moved = Arc::unwrap_or_clone(w);
        assert_eq!(calls(&moved), 1);
    }

    #[test]
    fn a_merge_nobody_reads_is_let_go() {
        let cache = ClosedMerge::default();
        let w = window(1);
        cache.merged(std::slice::from_ref(&w), 1_000);
        // A hit counts as a read.
        cache.merged(std::slice::from_ref(&w), 1_500);
        cache.expire(1_500 + KEEP_MS - 1);
        assert!(cache.last.lock().is_some());
        cache.expire(1_500 + KEEP_MS);
        assert!(cache.last.lock().is_none());
    }
}
