//! Mergeable statistics: counters and HDR latency histograms.
//!
//! Everything here merges exactly (counts add, histograms add bucket by
//! bucket), so per-shard and per-window partials can be combined in any
//! order — on read today, across aggregators later — without averaging
//! percentiles.

use std::sync::Arc;

use serde::Serialize;

use super::histogram::{self, Sparse};

/// Three significant digits: values are kept to 0.1% of their size.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency distribution: the histogram in microseconds, the sum in
/// nanoseconds (so means stay exact even for sub-microsecond remainders).
///
/// The live window records into raw values, then into HDR's dense counts
/// ([`histogram::Counts`], fast to record into); closed windows and the history hold the sparse
/// form ([`histogram::Sparse`]: the non-zero buckets, about a byte each),
/// which merges and answers quantiles without a dense histogram. All forms
/// read the same: a histogram of the values recorded, exactly.
#[derive(Clone, Default)]
pub struct Latency {
    pub count: u64,
    pub sum_ns: u64,
    repr: Repr,
}

#[derive(Clone, Default)]
enum Repr {
    #[default]
    Empty,
    /// Up to [`FEW`] values (µs) as recorded.
    Few(Vec<u64>),
    /// Past [`FEW`] values in the live window. In place, not boxed: it is
    /// a `Vec` (the size of `Few`'s), and a box put one more dependent
    /// load in front of every record.
    Dense(histogram::Counts),
    /// Closed windows, merges of them and the history.
    Sparse(Sparse),
}

/// Values kept as they are before a histogram is made. A dense HDR
/// histogram of 3 significant digits takes 16 KiB and up, so with many
/// edges each seen a few times per window (10^5 edges at 100 k spans/s), the
/// histograms, not the counts, were most of the graph's memory: 2 GiB of
/// RSS in the soak. A histogram built from the values on read is the same
/// as one they had been recorded into, so nothing a reader sees changes.
const FEW: usize = 32;

/// Percentiles in milliseconds, as the API reports them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencySummary {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// The buckets of a latency, ascending: borrowed from the sparse form, or
/// made from the raw values or the dense histogram.
// `Few` sorts up to 32 values on the stack so reading a live window
// allocates nothing; the iterator only ever lives for one read.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Buckets<'a> {
    Sparse(histogram::Iter<'a>),
    Dense(histogram::CountsIter<'a>),
    Few(histogram::FewBuckets),
    Owned(std::vec::IntoIter<(u32, u64)>),
}

impl Iterator for Buckets<'_> {
    type Item = (u32, u64);

    fn next(&mut self) -> Option<(u32, u64)> {
        match self {
            Buckets::Sparse(i) => i.next(),
            Buckets::Dense(i) => i.next(),
            Buckets::Few(i) => i.next(),
            Buckets::Owned(i) => i.next(),
        }
    }
}

const _: () = assert!(FEW <= histogram::FEW_MAX);

impl Latency {
    pub fn record(&mut self, ns: u64) {
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        let us = ns / 1000;
        match &mut self.repr {
            // The busy edges' case first.
            Repr::Dense(counts) => counts.record(us),
            Repr::Few(values) if values.len() < FEW => values.push(us),
            _ => self.record_first_or_past_few(us),
        }
    }

    /// The first value, or the one past [`FEW`] that makes the histogram.
    /// A call of its own: inlined, its frame (560 bytes and five
    /// saved registers, for the buckets it sorts) was set up on every
    /// record, and that prologue held a tenth of the records' samples.
    #[cold]
    #[inline(never)]
    fn record_first_or_past_few(&mut self, us: u64) {
        match self.repr {
            Repr::Empty => self.repr = Repr::Few(vec![us]),
            _ => self.dense().record(us),
        }
    }

    fn dense(&mut self) -> &mut histogram::Counts {
        if !matches!(self.repr, Repr::Dense(_)) {
            let counts = histogram::Counts::from_buckets(self.buckets());
            self.repr = Repr::Dense(counts);
        }
        match &mut self.repr {
            Repr::Dense(h) => h,
            _ => unreachable!("made dense just above"),
        }
    }

    fn buckets(&self) -> Buckets<'_> {
        match &self.repr {
            Repr::Empty => Buckets::Owned(Vec::new().into_iter()),
            Repr::Few(values) => Buckets::Few(histogram::FewBuckets::new(values)),
            Repr::Dense(counts) => Buckets::Dense(counts.iter()),
            Repr::Sparse(s) => Buckets::Sparse(s.iter()),
        }
    }

    /// Adds `other` into `self`, exactly.
    ///
    /// Only a live (dense) histogram stays dense; every other merge gives
    /// raw values (while few) or the sparse form, whose size follows the buckets used. That is what
    /// keeps the history and reads of many windows small: a dense result
    /// would cost 16 KiB and up per latency whatever it holds.
    pub fn merge(&mut self, other: &Latency) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        match (&mut self.repr, &other.repr) {
            (Repr::Empty, Repr::Dense(theirs)) => {
                self.repr = Repr::Sparse(Sparse::from_sorted(theirs.iter()));
            }
            (Repr::Empty, theirs) => {
                self.repr = theirs.clone();
            }
            (Repr::Few(mine), Repr::Few(theirs)) if mine.len() + theirs.len() <= FEW => {
                mine.extend_from_slice(theirs);
            }
            (Repr::Dense(mine), _) => {
                for (i, c) in other.buckets() {
                    mine.add(i, c);
                }
            }
            (Repr::Sparse(mine), _) => {
                self.repr = Repr::Sparse(mine.merge(other.buckets()));
            }
            (Repr::Few(_), _) => {
                self.repr = Repr::Sparse(histogram::merge_sorted(self.buckets(), other.buckets()));
            }
        }
    }

    /// Shrinks to the sparse form (for closed windows).
    pub fn compact(&mut self) {
        match &mut self.repr {
            Repr::Few(values) => {
                // They are dropped next: sort them where they are.
                values.sort_unstable();
                self.repr = Repr::Sparse(Sparse::from_sorted(histogram::sorted_values(values)));
            }
            Repr::Dense(counts) => self.repr = Repr::Sparse(Sparse::from_sorted(counts.iter())),
            Repr::Empty | Repr::Sparse(_) => {}
        }
    }

    /// Bytes this latency holds on the heap (an estimate for the window
    /// and history accounting; allocator overhead not counted).
    pub fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Few(values) => values.capacity() * std::mem::size_of::<u64>(),
            Repr::Dense(counts) => counts.heap_bytes(),
            Repr::Sparse(s) => s.heap_bytes(),
        }
    }

    /// The HDR V2 encoding of this distribution (empty when nothing was
    /// recorded): the bytes of a histogram the values had been recorded
    /// into, whichever form the latency is held in.
    pub fn encoded(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        histogram::encode_v2(self.buckets(), &mut buf);
        buf
    }

    /// The quantile `q` (0..=1) in microseconds, or `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let mut out = [0];
        histogram::quantiles(self.buckets(), &[q], &mut out)?;
        Some(out[0])
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        if self.count == 0 {
            return None;
        }
        // p50, p90, p99, p99.9 and the maximum (the quantile 1).
        let mut us = [0u64; 5];
        histogram::quantiles(self.buckets(), &[0.5, 0.9, 0.99, 0.999, 1.0], &mut us)?;
        let ms = |us: u64| us as f64 / 1000.0;
        Some(LatencySummary {
            mean: self.sum_ns as f64 / self.count as f64 / 1e6,
            p50: ms(us[0]),
            p90: ms(us[1]),
            p99: ms(us[2]),
            p999: ms(us[3]),
            max: ms(us[4]),
        })
    }
}

/// Calls, errors and latency of one thing (a node, an operation).
#[derive(Clone, Default)]
pub struct CallStats {
    pub calls: u64,
    pub errors: u64,
    pub latency: Latency,
}

impl CallStats {
    pub fn record(&mut self, ns: u64, failed: bool) {
        self.calls += 1;
        self.errors += u64::from(failed);
        self.latency.record(ns);
    }

    pub fn merge(&mut self, other: &CallStats) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }

    pub fn compact(&mut self) {
        self.latency.compact();
    }
}

/// One edge's calls: the client side's latency, the server side's where it
/// was seen, and for messaging the time a message waited in the queue.
#[derive(Clone, Default)]
pub struct EdgeStats {
    pub calls: u64,
    pub errors: u64,
    /// Calls that failed by timing out (deadline, timeout status or exception).
    pub timeouts: u64,
    /// From assembled traces: client spans on this edge, and how many of
    /// them were retries of an earlier attempt.
    pub attempts: u64,
    pub retries: u64,
    pub client: Latency,
    pub server: Latency,
    pub queue: Latency,
}

impl EdgeStats {
    pub fn merge(&mut self, other: &EdgeStats) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.attempts += other.attempts;
        self.retries += other.retries;
        self.client.merge(&other.client);
        self.server.merge(&other.server);
        self.queue.merge(&other.queue);
    }

    pub fn compact(&mut self) {
        self.client.compact();
        self.server.compact();
        self.queue.compact();
    }
}

/// A node's inbound calls, with the same split per operation (span name).
#[derive(Clone, Default)]
pub struct NodeStats {
    pub calls: CallStats,
    pub operations: super::partial::FastMap<Arc<str>, CallStats>,
}

impl NodeStats {
    /// The statistics of operation `op`, created empty when first seen; one
    /// lookup, and the name is cloned only when it is new.
    pub fn operation(&mut self, op: &Arc<str>) -> &mut CallStats {
        super::partial::find_or_insert(&mut self.operations, op, CallStats::default)
    }

    /// [`NodeStats::operation`], by the name's [`super::partial::name_hash`].
    pub fn operation_hashed(&mut self, op: &Arc<str>, hash: u64) -> &mut CallStats {
        super::partial::find_or_insert_hashed(&mut self.operations, op, hash, CallStats::default)
    }

    pub fn merge(&mut self, other: &NodeStats) {
        self.calls.merge(&other.calls);
        for (op, stats) in &other.operations {
            self.operations.entry(op.clone()).or_default().merge(stats);
        }
    }

    pub fn compact(&mut self) {
        self.calls.compact();
        self.operations.values_mut().for_each(CallStats::compact);
    }
}

/// One path (a root-to-leaf chain of nodes) over the traces that followed it.
#[derive(Clone, Default)]
pub struct PathStats {
    pub traces: u64,
    pub errors: u64,
    /// End to end: the root span's duration.
    pub latency: Latency,
    /// Per hop, the sum over traces of the hop's share of the end-to-end
    /// time (its client span's duration minus the next hop's).
    pub share_sums: Vec<f64>,
}

impl PathStats {
    pub fn merge(&mut self, other: &PathStats) {
        self.traces += other.traces;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        if self.share_sums.len() < other.share_sums.len() {
            self.share_sums.resize(other.share_sums.len(), 0.0);
        }
        for (mine, theirs) in self.share_sums.iter_mut().zip(&other.share_sums) {
            *mine += theirs;
        }
    }
}

/// Traces that crossed the same set of edges.
#[derive(Clone, Default)]
pub struct ClusterStats {
    /// The signature's edges, `source->target`, sorted.
    pub edges: Arc<[Arc<str>]>,
    pub traces: u64,
    pub errors: u64,
    pub latency: Latency,
}

impl ClusterStats {
    pub fn merge(&mut self, other: &ClusterStats) {
        if self.edges.is_empty() {
            self.edges = other.edges.clone();
        }
        self.traces += other.traces;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// One consumed message: when it was produced and consumed, and the key
/// whose order it belongs to (message key, else partition, else none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub key: Option<Arc<str>>,
    pub produced_ns: u64,
    pub consumed_ns: u64,
}

/// Deliveries kept per destination and window, for reorder detection.
pub const MAX_DELIVERIES: usize = 10_000;

/// Services named per destination and side; a topic with more is still
/// counted, only not every name is listed.
pub const MAX_CLIENTS: usize = 16;

/// A messaging destination (topic, queue): what went in and what came out.
#[derive(Clone, Default)]
pub struct DestinationStats {
    pub system: Option<Arc<str>>,
    pub produced: u64,
    pub consumed: u64,
    /// The services that produced to it and consumed from it: when both
    /// sides are instrumented they pair into one service-to-service edge,
    /// and these say which queue that edge runs through.
    pub producers: Vec<Arc<str>>,
    pub consumers: Vec<Arc<str>>,
    /// Consumer start minus producer end, for paired messages.
    pub lag: Latency,
    /// Paired deliveries (up to [`MAX_DELIVERIES`]); kept only in live and
    /// recent windows, not in the folded history.
    pub deliveries: Vec<Delivery>,
}

impl DestinationStats {
    pub fn merge(&mut self, other: &DestinationStats) {
        if self.system.is_none() {
            self.system.clone_from(&other.system);
        }
        self.produced += other.produced;
        self.consumed += other.consumed;
        for p in &other.producers {
            add_client(&mut self.producers, p);
        }
        for c in &other.consumers {
            add_client(&mut self.consumers, c);
        }
        self.lag.merge(&other.lag);
        let room = MAX_DELIVERIES.saturating_sub(self.deliveries.len());
        self.deliveries
            .extend(other.deliveries.iter().take(room).cloned());
    }

    pub fn compact(&mut self) {
        self.lag.compact();
    }
}

/// Adds `service` to a destination's producers or consumers, once, up to
/// [`MAX_CLIENTS`] (a linear scan: the lists are short).
pub fn add_client(list: &mut Vec<Arc<str>>, service: &Arc<str>) {
    if list.len() < MAX_CLIENTS && !list.iter().any(|s| s == service) {
        list.push(service.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    fn new_histogram() -> Histogram<u64> {
        Histogram::new(SIGNIFICANT_DIGITS).unwrap()
    }

    #[test]
    fn a_few_values_read_as_a_histogram_of_them_would() {
        for n in [1u64, 2, 31, 32, 33, 70] {
            let (mut l, mut h, mut halves) = (
                Latency::default(),
                new_histogram(),
                [Latency::default(), Latency::default()],
            );
            for v in 0..n {
                let ns = 900_000 + v * 7_919 % 500_000;
                l.record(ns);
                h.record(ns / 1000).unwrap();
                halves[(v % 2) as usize].record(ns);
            }
            halves[0].compact();
            let mut merged = Latency::default();
            merged.merge(&halves[0]);
            merged.merge(&halves[1]);
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                let want = Some(h.value_at_quantile(q));
                assert_eq!(l.quantile_us(q), want, "n={n} q={q}");
                assert_eq!(merged.quantile_us(q), want, "merged, n={n} q={q}");
            }
            assert_eq!(merged.summary(), l.summary(), "n={n}");
            assert_eq!(l.encoded(), merged.encoded(), "n={n}");
            assert_eq!(matches!(l.repr, Repr::Few(_)), n as usize <= FEW, "n={n}");
        }
    }

    #[test]
    fn merge_of_compacted_partials_is_exact() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        let mut all = Latency::default();
        for v in 1..=1000u64 {
            let target = if v % 3 == 0 { &mut a } else { &mut b };
            target.record(v * 7000);
            all.record(v * 7000);
        }
        a.compact();
        let mut merged = Latency::default();
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged.count, 1000);
        assert_eq!(merged.sum_ns, all.sum_ns);
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(merged.quantile_us(q), all.quantile_us(q));
        }
    }

    /// A latency of `n` values from `seed`, in the form `form` names:
    /// 0 as recorded (few or dense), 1 compacted (sparse).
    fn latency(n: u64, seed: u64, form: u8) -> Latency {
        let mut l = Latency::default();
        for v in 0..n {
            // Microseconds to seconds, so buckets of several sizes are used.
            l.record(((v * 7_919 + seed) % 1_000 * 1_000) << (v % 4 * 5));
        }
        if form == 1 {
            l.compact();
        }
        l
    }

    fn reference(parts: &[&Latency]) -> Histogram<u64> {
        let mut h = new_histogram();
        for l in parts {
            for (i, c) in l.buckets() {
                h.record_n(histogram::lowest_of(i), c).unwrap();
            }
        }
        h
    }

    #[test]
    fn every_form_merges_exactly_with_every_other() {
        // Empty, few, dense, and each compacted.
        let sizes = [0u64, 3, 20, 400];
        for &n in &sizes {
            for &m in &sizes {
                for (fa, fb) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let a = latency(n, 1, fa);
                    let b = latency(m, 2, fb);
                    let raw_a = latency(n, 1, 0);
                    let raw_b = latency(m, 2, 0);
                    let h = reference(&[&raw_a, &raw_b]);
                    let mut merged = a.clone();
                    merged.merge(&b);
                    let what = format!("{n} ({fa}) + {m} ({fb})");
                    assert_eq!(merged.count, n + m, "{what}");
                    assert_eq!(merged.sum_ns, raw_a.sum_ns + raw_b.sum_ns, "{what}");
                    if n + m == 0 {
                        assert!(merged.summary().is_none(), "{what}");
                        continue;
                    }
                    for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
                        let want = Some(h.value_at_quantile(q));
                        assert_eq!(merged.quantile_us(q), want, "{what} q={q}");
                    }
                    let s = merged.summary().unwrap();
                    assert_eq!(s.p99, h.value_at_quantile(0.99) as f64 / 1000.0, "{what}");
                    assert_eq!(s.max, h.max() as f64 / 1000.0, "{what}");
                    let mut v2 = Vec::new();
                    hdrhistogram::serialization::Serializer::serialize(
                        &mut hdrhistogram::serialization::V2Serializer::new(),
                        &h,
                        &mut v2,
                    )
                    .unwrap();
                    assert_eq!(merged.encoded(), v2, "{what}");
                    // Only a live histogram merged with anything stays dense.
                    let dense = matches!(merged.repr, Repr::Dense(_));
                    assert_eq!(dense, matches!(a.repr, Repr::Dense(_)), "{what}");
                }
            }
        }
    }

    #[test]
    fn merging_many_windows_stays_small() {
        // An edge seen twice per window for 2 000 windows, as the history
        // folds it: the sum of its windows, in about a byte per bucket used.
        let mut history = Latency::default();
        let mut all = Latency::default();
        for w in 0..2_000u64 {
            let mut window = Latency::default();
            for k in 0..2 {
                let ns = 900_000 + (w * 2 + k) * 7_919 % 500_000;
                window.record(ns);
                all.record(ns);
            }
            window.compact();
            history.merge(&window);
            assert!(!matches!(history.repr, Repr::Dense(_)), "window {w}");
        }
        assert_eq!(history.summary(), all.summary());
        assert_eq!(history.encoded(), all.encoded());
        let buckets = history.buckets().count();
        assert!(buckets <= 500, "{buckets}");
        assert!(
            history.heap_bytes() <= 2 * buckets + 64,
            "{} bytes for {buckets} buckets",
            history.heap_bytes()
        );
    }

    #[test]
    fn compact_keeps_percentiles() {
        let mut l = Latency::default();
        for v in 0..5000u64 {
            l.record(v * 1000);
        }
        let before = l.summary().unwrap();
        l.compact();
        assert_eq!(l.summary().unwrap(), before);
        assert!(l.encoded().len() < 16 * 1024);
    }
}
