//! `slicer`: cuts each chunk into pieces of about `average_size` ±
//! `size_variation` bytes (halving recursively, as Toxiproxy does), with
//! `delay` µs between pieces. Useful to find code that assumes one read is
//! one message.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Attributes, ToxicKind};
use crate::faultproxy::chain::{Behaviour, Ev, Queue};
use crate::faultproxy::rng::Rng;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Slicer {
    pub average_size: i64,
    pub size_variation: i64,
    /// Microseconds between pieces.
    pub delay: i64,
}

impl Attributes for Slicer {
    const FIELDS: &'static [&'static str] = &["average_size", "size_variation", "delay"];
}

pub struct SlicerLink {
    attrs: Slicer,
}

impl SlicerLink {
    pub fn new(attrs: &Slicer) -> Self {
        SlicerLink {
            attrs: attrs.clone(),
        }
    }

    /// Cut points of `[start, end)`. Toxiproxy recurses forever on an
    /// average size of 0 and panics on a variation over half a piece; here
    /// the average is at least 1 and every cut stays inside the range.
    fn cuts(&self, start: i64, end: i64, rng: &mut Rng, into: &mut Vec<i64>) {
        let avg = self.attrs.average_size.max(1);
        let var = self.attrs.size_variation.max(0);
        if (end - start) - avg <= var || end - start < 2 {
            into.push(end);
            return;
        }
        let mut mid = start + (end - start) / 2;
        if var > 0 {
            mid += rng.below(2 * var as u64) as i64 - var;
        }
        let mid = mid.clamp(start + 1, end - 1);
        self.cuts(start, mid, rng, into);
        self.cuts(mid, end, rng, into);
    }
}

impl Behaviour for SlicerLink {
    fn configure(&mut self, kind: &ToxicKind) {
        if let ToxicKind::Slicer(a) = kind {
            self.attrs = a.clone();
        }
    }

    fn admit(&mut self, at: Instant, ev: Ev, rng: &mut Rng, out: &mut Queue) {
        let Ev::Data(data) = ev else {
            return out.push(at, ev);
        };
        let mut ends = Vec::new();
        self.cuts(0, data.len() as i64, rng, &mut ends);
        let gap = Duration::from_micros(self.attrs.delay.max(0) as u64);
        let mut t = out.last().map_or(at, |l| l.max(at));
        let mut from = 0usize;
        for end in ends {
            out.push(t, Ev::Data(data.slice(from..end as usize)));
            from = end as usize;
            t += gap;
        }
        out.hold_until(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_chunk_near_the_average() {
        let link = SlicerLink::new(&Slicer {
            average_size: 10,
            size_variation: 3,
            delay: 0,
        });
        let mut ends = Vec::new();
        link.cuts(0, 1000, &mut Rng::new(3), &mut ends);
        assert_eq!(*ends.last().unwrap(), 1000);
        let sizes: Vec<i64> = std::iter::once(ends[0])
            .chain(ends.windows(2).map(|w| w[1] - w[0]))
            .collect();
        assert!(sizes.iter().all(|s| (1..=20).contains(s)), "{sizes:?}");
        assert!(sizes.len() > 40);
        let zero = SlicerLink::new(&Slicer::default());
        let mut ends = Vec::new();
        zero.cuts(0, 5, &mut Rng::new(3), &mut ends);
        assert_eq!(ends, vec![1, 2, 3, 4, 5]);
    }
}
