//! Tumbling time windows of [`WindowPartial`]s.
//!
//! Windows are aligned to the epoch (`index = time / length`), so every shard
//! — and later every aggregator — cuts the same windows and their partials
//! merge by index. Windows older than the retained ones fold into the
//! history, one partial that keeps "everything since start" exact in
//! bounded memory.
//!
//! Retention is bounded twice: by count (`windows_kept`) and by size. With
//! many distinct edges, 120 windows of 40 000 edges each took gigabytes, so
//! once the closed windows together hold more entries (edges, nodes, paths,
//! clusters, destinations) than the budget (`max_edges`), the oldest fold
//! into the history early. `?window=N` then covers fewer windows than
//! asked; `all` stays exact. The two newest closed windows are always kept:
//! the operators read each closed window one tick after it closes.
//!
//! The history is bounded too: its histograms are sparse (see
//! [`super::histogram`]), so each costs about a byte per bucket used rather
//! than a dense histogram's 16 KiB and up; paths, clusters and destinations
//! are capped ([`WindowPartial::fold`]).
//!
//! Folding is batched: evicted windows first merge into a staging partial,
//! which folds into the history every [`FOLD_EVERY`] windows. Why: a fold
//! rewrites the history's sparse histogram of every edge it touches, and
//! that histogram grows with everything the edge ever saw, while a window
//! adds a value or two per edge when there are many edges. Staged, an edge
//! seen in several of the batch's windows is rewritten once, and the
//! staging partial's histograms stay a few bytes each. This runs on the
//! shard's thread, between batches of spans, never per span.

use std::collections::VecDeque;
use std::sync::Arc;

use super::partial::{HistoryCaps, WindowPartial};

/// Which windows a read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSelect {
    /// The window in progress.
    Current,
    /// The window in progress and the N-1 before it.
    Last(usize),
    /// Everything since start.
    All,
}

pub struct Windows {
    length_ms: u64,
    keep: usize,
    current_index: u64,
    /// Where the window after the current one starts: the per-span check
    /// that the window still runs is one compare, not a 64-bit division
    /// (about 2% of aggregation, by callgrind).
    next_start_ms: u64,
    current: WindowPartial,
    /// Closed windows, oldest first, histograms compacted. Shared, so the
    /// operators read them without a copy (a window of 10^5 edges is tens
    /// of MiB).
    closed: VecDeque<(u64, Arc<WindowPartial>)>,
    /// Evicted windows not folded into `history` yet, and how many.
    /// Shared, as closed windows are, so a reader of `all` takes them
    /// without a copy on the shard's thread.
    staged: Arc<WindowPartial>,
    staged_windows: usize,
    /// Everything older than `staged`.
    history: Arc<WindowPartial>,
    caps: HistoryCaps,
    /// Entries the closed windows may hold together before the oldest fold.
    budget: usize,
    /// Entries the closed windows hold now.
    retained: usize,
}

/// The partials a selection covers, from [`Windows::select_parts`].
pub struct Selected {
    /// A copy of the window in progress.
    pub current: WindowPartial,
    /// Closed windows (and for `all`, the staged and history partials).
    pub shared: Vec<Arc<WindowPartial>>,
    /// The start of the earliest window covered (ms since the epoch).
    pub start_ms: u64,
}

/// Closed windows kept whatever their size (see the module docs).
const ALWAYS_KEPT: usize = 2;

/// Evicted windows staged before they fold into the history (see the
/// module docs). At 10^5 edges and 100 k spans/s each edge appears in about
/// one window in four per shard: a minute's windows rewrite each history
/// histogram once instead of 15 times, and the staging partial holds at
/// most every edge (fewer than the history), with about 15 values each —
/// mostly under 22 bytes, kept in place.
pub const FOLD_EVERY: usize = 60;

impl Windows {
    /// `keep` counts the current window too; at least one is kept.
    pub fn new(length_ms: u64, keep: usize) -> Windows {
        Windows {
            length_ms: length_ms.max(1),
            keep: keep.max(1),
            current_index: 0,
            next_start_ms: length_ms.max(1),
            current: WindowPartial::default(),
            closed: VecDeque::new(),
            staged: Arc::default(),
            staged_windows: 0,
            history: Arc::default(),
            caps: HistoryCaps::default(),
            budget: usize::MAX,
            retained: 0,
        }
    }

    /// Bounds the entries closed windows hold together (see the module docs).
    pub fn with_budget(mut self, entries: usize) -> Windows {
        self.budget = entries.max(1);
        self
    }

    /// Bounds what the history keeps of paths, clusters and destinations.
    pub fn with_history_caps(mut self, caps: HistoryCaps) -> Windows {
        self.caps = caps;
        self
    }

    pub fn length_ms(&self) -> u64 {
        self.length_ms
    }

    /// The partial to record into at `now_ms`, closing windows that ended.
    pub fn current(&mut self, now_ms: u64) -> &mut WindowPartial {
        self.advance(now_ms);
        &mut self.current
    }

    /// Closes the current window if `now_ms` lies past it.
    #[inline]
    pub fn advance(&mut self, now_ms: u64) {
        if now_ms >= self.next_start_ms {
            self.close_current(now_ms);
        }
    }

    /// Closes the current window and starts the one `now_ms` lies in.
    fn close_current(&mut self, now_ms: u64) {
        let index = now_ms / self.length_ms;
        if index <= self.current_index {
            return;
        }
        let mut done = std::mem::take(&mut self.current);
        if !done.is_empty() {
            done.compact();
            self.retained += done.entries();
            self.closed.push_back((self.current_index, Arc::new(done)));
        }
        self.current_index = index;
        self.next_start_ms = index.saturating_add(1).saturating_mul(self.length_ms);
        // Drop closed windows that fell out of the retained range even if no
        // spans arrived for a while, so `Last(n)` means wall-clock windows.
        let oldest_kept = index.saturating_sub(self.keep as u64 - 1);
        while self.closed.len() + 1 > self.keep
            || self.closed.front().is_some_and(|(i, _)| *i < oldest_kept)
            || (self.retained > self.budget && self.closed.len() > ALWAYS_KEPT)
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        let Some((_, old)) = self.closed.pop_front() else {
            return;
        };
        // Still shared only if a reader holds it right now: it keeps its copy.
        let mut old = Arc::unwrap_or_clone(old);
        self.retained -= old.entries();
        old.forget_details();
        // `make_mut` copies only if a reader holds the partial right now.
        Arc::make_mut(&mut self.staged).fold(old, &self.caps);
        self.staged_windows += 1;
        if self.staged_windows >= FOLD_EVERY {
            let staged = Arc::unwrap_or_clone(std::mem::take(&mut self.staged));
            Arc::make_mut(&mut self.history).fold(staged, &self.caps);
            self.staged_windows = 0;
        }
    }

    /// Merges the selected windows into one partial; returns it with the
    /// start of the earliest window covered (ms since the epoch).
    pub fn select(&self, select: WindowSelect) -> (WindowPartial, u64) {
        let mut selected = self.select_parts(select);
        for part in &selected.shared {
            selected.current.merge(part);
        }
        (selected.current, selected.start_ms)
    }

    /// The selected windows unmerged: a copy of the window in progress and
    /// the shared closed, staged and history partials. Cheap, so the
    /// shard's thread answers a reader at once and the reader merges on
    /// its own thread; merging a dozen windows on the shard's thread for
    /// every poll of `/api/graph` delayed the spans queued behind it.
    pub fn select_parts(&self, select: WindowSelect) -> Selected {
        let first = match select {
            WindowSelect::Current => self.current_index,
            WindowSelect::Last(n) => self.current_index.saturating_sub(n.max(1) as u64 - 1),
            WindowSelect::All => 0,
        };
        let mut shared: Vec<Arc<WindowPartial>> = self
            .closed
            .iter()
            .filter(|(index, _)| *index >= first)
            .map(|(_, p)| p.clone())
            .collect();
        if select == WindowSelect::All {
            shared.push(self.staged.clone());
            shared.push(self.history.clone());
        }
        Selected {
            current: self.current.clone(),
            shared,
            start_ms: first * self.length_ms,
        }
    }

    /// Closed windows with an index above `after`, oldest first (for the
    /// operators, which evaluate each closed window once).
    pub fn closed_after(&self, after: u64) -> Vec<(u64, Arc<WindowPartial>)> {
        self.closed
            .iter()
            .filter(|(i, _)| *i > after)
            .map(|(i, p)| (*i, p.clone()))
            .collect()
    }

    /// The index of the window in progress (`time / length`).
    pub fn current_index(&self) -> u64 {
        self.current_index
    }

    pub fn current_start_ms(&self) -> u64 {
        self.current_index * self.length_ms
    }

    /// Heap bytes of the history and staging partials (estimated, see
    /// [`WindowPartial::heap_bytes`]).
    pub fn history_bytes(&self) -> usize {
        self.history.heap_bytes() + self.staged.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::graph::partial::{EdgeKey, EdgeKind, NodeKind};

    fn calls(w: &Windows, sel: WindowSelect) -> u64 {
        let (p, _) = w.select(sel);
        p.nodes.values().map(|n| n.stats.calls.calls).sum()
    }

    #[test]
    fn windows_rotate_and_all_stays_exact() {
        let mut w = Windows::new(10_000, 3);
        let name: std::sync::Arc<str> = "a".into();
        for second in 0..100u64 {
            let p = w.current(second * 1000);
            p.node(&name, NodeKind::Service)
                .stats
                .calls
                .record(5, false);
        }
        assert_eq!(calls(&w, WindowSelect::Current), 10);
        assert_eq!(calls(&w, WindowSelect::Last(2)), 20);
        assert_eq!(calls(&w, WindowSelect::Last(30)), 30);
        assert_eq!(calls(&w, WindowSelect::All), 100);
        // A long pause drops all retained windows into the history.
        w.advance(1_000_000);
        assert_eq!(calls(&w, WindowSelect::Last(3)), 0);
        assert_eq!(calls(&w, WindowSelect::All), 100);
    }

    #[test]
    fn large_windows_fold_early_and_all_stays_exact() {
        // Each second records 10 distinct nodes; the budget holds 3 windows' worth.
        let mut w = Windows::new(1000, 100).with_budget(30);
        for second in 0..20u64 {
            for n in 0..10 {
                let name: std::sync::Arc<str> = format!("n{n}").into();
                let p = w.current(second * 1000);
                p.node(&name, NodeKind::Service)
                    .stats
                    .calls
                    .record(5, false);
            }
        }
        assert!(
            w.closed.len() <= 3,
            "{} closed windows kept",
            w.closed.len()
        );
        assert_eq!(w.retained, w.closed.len() * 10);
        assert_eq!(calls(&w, WindowSelect::Last(2)), 20);
        assert_eq!(calls(&w, WindowSelect::All), 200);
        // The budget never drops the two newest closed windows.
        let mut tight = Windows::new(1000, 100).with_budget(1);
        for second in 0..5u64 {
            let name: std::sync::Arc<str> = "a".into();
            let p = tight.current(second * 1000);
            p.node(&name, NodeKind::Service)
                .stats
                .calls
                .record(5, false);
        }
        tight.advance(5000);
        assert_eq!(tight.closed.len(), ALWAYS_KEPT);
        assert_eq!(calls(&tight, WindowSelect::All), 5);
    }

    /// A deterministic stream of pseudo-random numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
    }

    fn edge_key(source: u64, target: u64) -> EdgeKey {
        EdgeKey {
            source: format!("s{source}").into(),
            target: format!("s{target}").into(),
            kind: EdgeKind::Rpc,
        }
    }

    /// Records `calls` calls on random edges of `edges` into both `p` and
    /// the reference partial, which is never windowed or compacted.
    fn record(p: &mut WindowPartial, reference: &mut WindowPartial, rng: &mut Rng, calls: u64) {
        for _ in 0..calls {
            // A few hot edges (past FEW values a window, so dense) and a long tail.
            let key = if rng.next(4) == 0 {
                edge_key(0, rng.next(3))
            } else {
                edge_key(1 + rng.next(12), rng.next(12))
            };
            // Microseconds to seconds.
            let ns = ((1 + rng.next(5_000)) * 1_000) << (rng.next(4) * 4);
            for part in [&mut *p, &mut *reference] {
                let e = part.edge(&key);
                e.calls += 1;
                e.client.record(ns);
                e.server.record(ns / 2);
            }
        }
    }

    fn assert_same_edges(got: &WindowPartial, want: &WindowPartial, when: &str) {
        assert_eq!(got.edges.len(), want.edges.len(), "{when}");
        for (key, w) in &want.edges {
            let g = &got.edges[key];
            let what = format!("{when}: {key:?}");
            assert_eq!(g.calls, w.calls, "{what}");
            for (g, w) in [(&g.client, &w.client), (&g.server, &w.server)] {
                assert_eq!((g.count, g.sum_ns), (w.count, w.sum_ns), "{what}");
                assert_eq!(g.summary(), w.summary(), "{what}");
                assert_eq!(g.encoded(), w.encoded(), "{what}");
            }
        }
    }

    #[test]
    fn all_is_exactly_the_merge_of_every_window() {
        // Windows fold early (budget) and are staged before the history, so
        // after 3 × FOLD_EVERY windows `all` merges the current window, the
        // closed ones, the staging partial and the history.
        let mut w = Windows::new(1000, 6).with_budget(60);
        let mut reference = WindowPartial::default();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut checked = 0;
        for second in 0..(3 * FOLD_EVERY as u64 + 5) {
            let p = w.current(second * 1000);
            record(p, &mut reference, &mut rng, 60);
            let f = FOLD_EVERY as u64;
            if [f / 2, f + 3, 2 * f + f / 2].contains(&second) {
                let (all, _) = w.select(WindowSelect::All);
                assert_same_edges(&all, &reference, &format!("second {second}"));
                checked += 1;
            }
        }
        assert!(!w.staged.is_empty() && !w.history.is_empty(), "both in use");
        assert!(checked >= 3);
        let (all, _) = w.select(WindowSelect::All);
        assert_same_edges(&all, &reference, "at the end");
    }

    #[test]
    fn history_memory_plateaus_as_windows_fold() {
        // 150 edges, each called in every window with latencies over 100
        // buckets (0.9–1 ms): once every bucket has been seen, folding more
        // windows must not grow the history; with dense histograms each
        // latency alone took 16 KiB. New paths every window stop at the cap.
        let caps = HistoryCaps {
            paths: 50,
            destinations: 10,
        };
        let mut w = Windows::new(1000, 3).with_history_caps(caps);
        let mut rng = Rng(42);
        let mut bytes_at = Vec::new();
        for second in 0..2_000u64 {
            let p = w.current(second * 1000);
            for e in 0..150 {
                let ns = 900_000 + rng.next(100) * 1_000;
                let edge = p.edge(&edge_key(e, e + 1));
                edge.calls += 1;
                edge.client.record(ns);
                edge.server.record(ns);
            }
            let path: crate::graph::partial::PathKey =
                [Arc::from(format!("p{second}")), Arc::from("x")].into();
            p.paths.entry(path).or_default().latency.record(1_000);
            if second % 500 == 499 {
                bytes_at.push(w.history.heap_bytes());
                // The staging partial holds at most FOLD_EVERY windows' values.
                assert!(w.staged.heap_bytes() < 300 * 2 * (FOLD_EVERY + 64) + 32 * 1024);
            }
        }
        let (first, last) = (bytes_at[1], *bytes_at.last().unwrap());
        assert!(
            last <= first + first / 100,
            "history grew from {first} to {last} bytes: {bytes_at:?}"
        );
        let per_latency = last / 300;
        assert!(per_latency < 1024, "{per_latency} bytes per latency");
        assert!(w.history.paths.len() <= 50, "{}", w.history.paths.len());
        assert!(w.staged.paths.len() <= FOLD_EVERY * 50);
        let (all, _) = w.select(WindowSelect::All);
        assert_eq!(all.edges.values().map(|e| e.calls).sum::<u64>(), 300_000);
    }
}
