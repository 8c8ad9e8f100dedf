//! Tumbling time windows of [`WindowPartial`]s.
//!
//! Windows are aligned to the epoch (`index = time / length`), so every shard
//! — and later every aggregator — cuts the same windows and their partials
//! merge by index. Windows older than the retained ones are merged into one
//! `evicted` partial, which keeps "everything since start" exact in bounded
//! memory.
//!
//! Retention is bounded twice: by count (`windows_kept`) and by size. With
//! many distinct edges, 120 windows of 40 000 edges each took gigabytes, so
//! once the closed windows together hold more entries (edges, nodes, paths,
//! clusters, destinations) than the budget (`max_edges`), the oldest fold
//! into `evicted` early. `?window=N` then covers fewer windows than asked;
//! `all` stays exact. The two newest closed windows are always kept: the
//! operators read each closed window one tick after it closes.

use std::collections::VecDeque;

use super::partial::WindowPartial;

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
    current: WindowPartial,
    /// Closed windows, oldest first, histograms compacted.
    closed: VecDeque<(u64, WindowPartial)>,
    evicted: WindowPartial,
    /// Entries the closed windows may hold together before the oldest fold.
    budget: usize,
    /// Entries the closed windows hold now.
    retained: usize,
}

/// Closed windows kept whatever their size (see the module docs).
const ALWAYS_KEPT: usize = 2;

impl Windows {
    /// `keep` counts the current window too; at least one is kept.
    pub fn new(length_ms: u64, keep: usize) -> Windows {
        Windows {
            length_ms: length_ms.max(1),
            keep: keep.max(1),
            current_index: 0,
            current: WindowPartial::default(),
            closed: VecDeque::new(),
            evicted: WindowPartial::default(),
            budget: usize::MAX,
            retained: 0,
        }
    }

    /// Bounds the entries closed windows hold together (see the module docs).
    pub fn with_budget(mut self, entries: usize) -> Windows {
        self.budget = entries.max(1);
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
    pub fn advance(&mut self, now_ms: u64) {
        let index = now_ms / self.length_ms;
        if index <= self.current_index {
            return;
        }
        let mut done = std::mem::take(&mut self.current);
        if !done.is_empty() {
            done.compact();
            self.retained += done.entries();
            self.closed.push_back((self.current_index, done));
        }
        self.current_index = index;
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
        if let Some((_, mut old)) = self.closed.pop_front() {
            self.retained -= old.entries();
            old.forget_details();
            self.evicted.merge(&old);
        }
    }

    /// Merges the selected windows into one partial; returns it with the
    /// start of the earliest window covered (ms since the epoch).
    pub fn select(&self, select: WindowSelect) -> (WindowPartial, u64) {
        let mut out = self.current.clone();
        let first = match select {
            WindowSelect::Current => self.current_index,
            WindowSelect::Last(n) => self.current_index.saturating_sub(n.max(1) as u64 - 1),
            WindowSelect::All => 0,
        };
        for (index, partial) in &self.closed {
            if *index >= first {
                out.merge(partial);
            }
        }
        if select == WindowSelect::All {
            out.merge(&self.evicted);
        }
        (out, first * self.length_ms)
    }

    /// Closed windows with an index above `after`, oldest first (for the
    /// operators, which evaluate each closed window once).
    pub fn closed_after(&self, after: u64) -> Vec<(u64, WindowPartial)> {
        self.closed
            .iter()
            .filter(|(i, _)| *i > after)
            .cloned()
            .collect()
    }

    /// The index of the window in progress (`time / length`).
    pub fn current_index(&self) -> u64 {
        self.current_index
    }

    pub fn current_start_ms(&self) -> u64 {
        self.current_index * self.length_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::partial::NodeKind;

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
        // A long pause drops all retained windows into `evicted`.
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
}
