//! Sparse HDR histograms: only the non-zero buckets of an HDR histogram,
//! in a compact byte form that merges and answers quantiles without ever
//! building the dense histogram.
//!
//! Why not keep closed windows and the history as HDR V2 encodings? V2 is
//! just as small, but every merge or quantile had to decode it into a dense
//! histogram first — an allocation of 16 KiB (values below 2 ms) to ~100 KiB
//! (values up to seconds) per latency — and a merged result stayed dense. The
//! history ("everything since start") merges every closed window into itself,
//! so with 10^5 edges it turned into 10^5 × (client + server) dense
//! histograms: 3 GiB in the soak. Here a merge is a linear walk over two
//! short byte strings and its result is as small as its inputs, so memory
//! follows the buckets actually used (about 1–2 bytes each), and a window's
//! evaluation reads quantiles straight from the bytes.
//!
//! Exactness: the bucket of a value is computed exactly as `hdrhistogram`
//! lays out its counts (3 significant digits, lowest discernible value 1),
//! and quantiles follow its `value_at_quantile` step by step, so every
//! figure equals what the dense histogram would report (the tests compare
//! them over values of every magnitude). V2 stays the interchange format:
//! [`encode_v2`] writes it from the buckets, byte for byte what
//! `hdrhistogram` writes for the same values (the tests compare them).

use std::sync::Arc;

/// `hdrhistogram`'s layout at 3 significant digits and lowest value 1:
/// 2048 sub-buckets (a power of two above 2 × 10^3), of which each bucket
/// past the first uses the upper half; unit magnitude 0.
const HALF_MAGNITUDE: u32 = 10;
const HALF_COUNT: u64 = 1 << HALF_MAGNITUDE;
const SUB_BUCKET_MASK: u64 = (1 << (HALF_MAGNITUDE + 1)) - 1;
/// 64 − unit magnitude − sub-bucket count magnitude.
const LEADING_ZERO_BASE: u32 = 64 - (HALF_MAGNITUDE + 1);

// The layout above is derived for this precision (a test checks it against
// `hdrhistogram` itself).
const _: () = assert!(super::stats::SIGNIFICANT_DIGITS == 3);

/// The index of `value`'s bucket in HDR's counts array.
pub fn index_of(value: u64) -> u32 {
    let bucket = LEADING_ZERO_BASE - (value | SUB_BUCKET_MASK).leading_zeros();
    let sub = value >> bucket;
    // HDR: (bucket + 1) << half_magnitude, plus sub − half_count.
    (u64::from(bucket) * HALF_COUNT + sub) as u32
}

/// The lowest value in bucket `index` (HDR's `value_for`).
pub fn lowest_of(index: u32) -> u64 {
    let (bucket, sub) = location(index);
    sub << bucket
}

/// The highest value in bucket `index` (HDR's `highest_equivalent`).
pub fn highest_of(index: u32) -> u64 {
    let (bucket, sub) = location(index);
    (sub << bucket).saturating_add(1 << bucket) - 1
}

fn location(index: u32) -> (u32, u64) {
    let bucket = (index >> HALF_MAGNITUDE) as i64 - 1;
    let sub = (u64::from(index) & (HALF_COUNT - 1)) + HALF_COUNT;
    if bucket < 0 {
        (0, sub - HALF_COUNT)
    } else {
        (bucket as u32, sub)
    }
}

/// A live window's histogram: HDR's counts array itself, indexed by
/// [`index_of`] and grown a whole HDR bucket at a time to cover the largest
/// value seen, as an auto-resizing `hdrhistogram::Histogram` grows.
///
/// Why not that `Histogram`: its `record` also keeps the minimum, maximum
/// and total and checks for overflow and resizing on every value — 5.5% of
/// decode + aggregate by `perf`, for two records per span — where a window
/// needs only the counts: its quantiles, merges and V2 encoding are all
/// read from the buckets, as for the other forms.
#[derive(Clone, Default)]
pub struct Counts {
    counts: Vec<u64>,
}

/// The non-zero buckets of a [`Counts`], ascending.
///
/// Why not `enumerate().filter_map(..)`: a live histogram covers every
/// bucket up to its largest value (11 264 for values up to a second) and
/// uses a few dozen of them, so reading one is mostly stepping over
/// zeros. That step, one bucket at a time, was the largest cost of a
/// `/api/graph` read (the windows in progress are dense) and of closing a
/// window; this skips zeros eight buckets at a time (`SKIP`).
#[derive(Clone)]
pub struct CountsIter<'a> {
    counts: &'a [u64],
    next: usize,
}

/// Buckets tested for zero at once: one OR over them, which the compiler
/// turns into vector instructions.
const SKIP: usize = 8;

impl Iterator for CountsIter<'_> {
    type Item = (u32, u64);

    fn next(&mut self) -> Option<(u32, u64)> {
        let counts = self.counts;
        let mut i = self.next;
        while let Some(run) = counts.get(i..i + SKIP) {
            if run.iter().fold(0, |any, &c| any | c) != 0 {
                break;
            }
            i += SKIP;
        }
        while let Some(&c) = counts.get(i) {
            i += 1;
            if c > 0 {
                self.next = i;
                return Some(((i - 1) as u32, c));
            }
        }
        self.next = i;
        None
    }
}

impl std::iter::FusedIterator for CountsIter<'_> {}

impl Counts {
    /// From `(index, count)` pairs in any order.
    pub fn from_buckets(entries: impl Iterator<Item = (u32, u64)>) -> Counts {
        let mut counts = Counts::default();
        entries.for_each(|(i, c)| counts.add(i, c));
        counts
    }

    #[inline]
    pub fn record(&mut self, value: u64) {
        self.add(index_of(value), 1);
    }

    #[inline]
    pub fn add(&mut self, index: u32, count: u64) {
        let i = index as usize;
        if i >= self.counts.len() {
            self.grow(i);
        }
        self.counts[i] += count;
    }

    /// Covers `index`, to the end of its HDR bucket.
    #[cold]
    fn grow(&mut self, index: usize) {
        let len = (index | (HALF_COUNT as usize - 1)) + 1;
        // Exactly: `resize` alone may double the capacity, and a window
        // holds one of these per busy latency.
        self.counts.reserve_exact(len - self.counts.len());
        self.counts.resize(len, 0);
    }

    pub fn iter(&self) -> CountsIter<'_> {
        CountsIter {
            counts: &self.counts,
            next: 0,
        }
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<u64>()
    }
}

/// Non-zero buckets, ascending by index, as bytes: per bucket one varint
/// token `gap << 1 | has_count` (gap: buckets skipped since the previous
/// one), then the count as a varint when it is not 1. Latencies cluster, so
/// gaps are small and most counts of a window are 1: a bucket takes about
/// one byte, against 8 per raw value or per dense counter.
///
/// Up to [`INLINE`] bytes are kept in place — a window's histogram of a
/// few values, the common case with many edges, costs no allocation to
/// make, clone or drop. Longer ones are shared (`Arc`): a read of many
/// windows clones the history's histograms rather than copying them.
#[derive(Clone)]
pub struct Sparse(Bytes);

#[derive(Clone)]
enum Bytes {
    Inline(u8, [u8; INLINE]),
    Shared(Arc<[u8]>),
}

/// Bytes kept in place: as many as fit beside the length and the tag in
/// the 24 bytes an `Arc<[u8]>` and its tag take anyway.
const INLINE: usize = 22;

impl PartialEq for Sparse {
    fn eq(&self, other: &Sparse) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Sparse {}

impl Sparse {
    /// From `(index, count)` pairs in ascending index order, counts > 0.
    pub fn from_sorted(entries: impl Iterator<Item = (u32, u64)>) -> Sparse {
        build(|b| entries.for_each(|(i, c)| b.push(i, c)))
    }

    /// Raw values (any order).
    pub fn from_values(values: &[u64]) -> Sparse {
        Sparse::from_sorted(sorted_entries(values).into_iter())
    }

    fn from_bytes(bytes: &[u8]) -> Sparse {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Sparse(Bytes::Inline(bytes.len() as u8, inline))
        } else {
            Sparse(Bytes::Shared(bytes.into()))
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Bytes::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Bytes::Shared(bytes) => bytes,
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            bytes: self.bytes(),
            next_index: 0,
        }
    }

    /// Both inputs' buckets, added: one pass, no dense histogram. Past the
    /// last of `other`'s buckets the rest of `self` is copied as it is.
    pub fn merge(&self, mut other: impl Iterator<Item = (u32, u64)>) -> Sparse {
        build(|b| {
            let mut mine = self.iter();
            let (mut a, mut t) = (mine.next(), other.next());
            loop {
                match (a, t) {
                    (Some((i, c)), Some((j, d))) => {
                        if i < j {
                            b.push(i, c);
                            a = mine.next();
                        } else if j < i {
                            b.push(j, d);
                            t = other.next();
                        } else {
                            b.push(i, c + d);
                            a = mine.next();
                            t = other.next();
                        }
                    }
                    (Some((i, c)), None) => {
                        // The rest is coded relative to `i`, as it will be here.
                        b.push(i, c);
                        b.bytes.extend_from_slice(mine.bytes);
                        return;
                    }
                    (None, Some((j, d))) => {
                        b.push(j, d);
                        t = other.next();
                    }
                    (None, None) => return,
                }
            }
        })
    }

    /// Bytes held on the heap (the `Arc`'s counters included).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Bytes::Inline(..) => 0,
            Bytes::Shared(bytes) => bytes.len() + 2 * std::mem::size_of::<usize>(),
        }
    }
}

/// Two ascending bucket sequences, added.
pub fn merge_sorted(
    mut a: impl Iterator<Item = (u32, u64)>,
    mut b: impl Iterator<Item = (u32, u64)>,
) -> Sparse {
    build(|out| {
        let (mut x, mut y) = (a.next(), b.next());
        loop {
            match (x, y) {
                (Some((i, c)), Some((j, _))) if i < j => {
                    out.push(i, c);
                    x = a.next();
                }
                (Some((i, c)), Some((j, d))) if i == j => {
                    out.push(i, c + d);
                    x = a.next();
                    y = b.next();
                }
                (_, Some((j, d))) => {
                    out.push(j, d);
                    y = b.next();
                }
                (Some((i, c)), None) => {
                    out.push(i, c);
                    x = a.next();
                }
                (None, None) => return,
            }
        }
    })
}

/// `(index, count)` of raw values, ascending, equal buckets summed.
pub fn sorted_entries(values: &[u64]) -> Vec<(u32, u64)> {
    let mut indices: Vec<u32> = values.iter().map(|&v| index_of(v)).collect();
    indices.sort_unstable();
    let mut out: Vec<(u32, u64)> = Vec::with_capacity(indices.len());
    for i in indices {
        match out.last_mut() {
            Some((last, count)) if *last == i => *count += 1,
            _ => out.push((i, 1)),
        }
    }
    out
}

/// Raw values a [`FewBuckets`] takes.
pub const FEW_MAX: usize = 32;

/// The buckets of up to [`FEW_MAX`] raw values, ascending, sorted on the
/// stack: reading a live window's few values allocates nothing.
#[derive(Clone)]
pub struct FewBuckets {
    values: [u64; FEW_MAX],
    len: usize,
    pos: usize,
}

impl FewBuckets {
    /// Panics past [`FEW_MAX`] values.
    pub fn new(values: &[u64]) -> FewBuckets {
        let mut out = FewBuckets {
            values: [0; FEW_MAX],
            len: values.len(),
            pos: 0,
        };
        out.values[..values.len()].copy_from_slice(values);
        // Bucket indices ascend with values.
        out.values[..values.len()].sort_unstable();
        out
    }
}

impl Iterator for FewBuckets {
    type Item = (u32, u64);

    fn next(&mut self) -> Option<(u32, u64)> {
        next_bucket(&self.values[..self.len], &mut self.pos)
    }
}

/// The buckets of values sorted ascending.
pub fn sorted_values(values: &[u64]) -> impl Iterator<Item = (u32, u64)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || next_bucket(values, &mut pos))
}

fn next_bucket(sorted: &[u64], pos: &mut usize) -> Option<(u32, u64)> {
    let first = *sorted.get(*pos)?;
    let index = index_of(first);
    // Values up to the bucket's highest share it.
    let top = highest_of(index);
    let mut count = 0;
    while *pos < sorted.len() && sorted[*pos] <= top {
        count += 1;
        *pos += 1;
    }
    Some((index, count))
}

/// Codes buckets into a buffer reused per thread, then copies the result
/// once into place (no allocation at all when it is inline).
fn build(f: impl FnOnce(&mut Builder)) -> Sparse {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let mut bytes = scratch.take();
        bytes.clear();
        let mut b = Builder {
            bytes,
            next_index: 0,
        };
        f(&mut b);
        let out = Sparse::from_bytes(&b.bytes);
        scratch.replace(b.bytes);
        out
    })
}

struct Builder {
    bytes: Vec<u8>,
    next_index: u32,
}

impl Builder {
    fn push(&mut self, index: u32, count: u64) {
        debug_assert!(index >= self.next_index && count > 0, "ascending, non-zero");
        let gap = u64::from(index - self.next_index);
        if count == 1 {
            put_varint(&mut self.bytes, gap << 1);
        } else {
            put_varint(&mut self.bytes, gap << 1 | 1);
            put_varint(&mut self.bytes, count);
        }
        self.next_index = index + 1;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The buckets of a [`Sparse`], ascending.
#[derive(Clone)]
pub struct Iter<'a> {
    bytes: &'a [u8],
    next_index: u32,
}

impl Iter<'_> {
    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        while let Some((&b, rest)) = self.bytes.split_first() {
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        v
    }
}

impl Iterator for Iter<'_> {
    type Item = (u32, u64);

    fn next(&mut self) -> Option<(u32, u64)> {
        if self.bytes.is_empty() {
            return None;
        }
        let token = self.varint();
        let index = self.next_index + (token >> 1) as u32;
        let count = if token & 1 == 1 { self.varint() } else { 1 };
        self.next_index = index + 1;
        Some((index, count))
    }
}

/// HDR's `value_at_quantile` for each of `quantiles` (ascending), over
/// buckets in ascending order: the highest value of the first bucket at
/// which the running count reaches `ceil(q × total)` (at least 1); the
/// lowest value of it for q = 0. `None` when there are no values.
pub fn quantiles<I>(entries: I, quantiles: &[f64], out: &mut [u64]) -> Option<()>
where
    I: Iterator<Item = (u32, u64)> + Clone,
{
    let total: u64 = entries.clone().map(|(_, c)| c).sum();
    if total == 0 {
        return None;
    }
    let mut entries = entries;
    let mut running = 0u64;
    let mut current = None;
    for (q, slot) in quantiles.iter().zip(out.iter_mut()) {
        let q = q.min(1.0);
        let target = ((q * total as f64).ceil() as u64).max(1);
        while running < target {
            let Some((i, c)) = entries.next() else { break };
            running += c;
            current = Some(i);
        }
        let index = current?;
        *slot = if q == 0.0 {
            lowest_of(index)
        } else {
            highest_of(index)
        };
    }
    Some(())
}

/// The HDR V2 encoding (`hdrhistogram`'s `V2Serializer`, byte for byte)
/// of a histogram holding these buckets, written without making it: the
/// history writer encodes every latency of every closed window, and a
/// dense histogram per latency (16 KiB and up, zeroed, then walked) was
/// most of its work. Appends to `out`; nothing for no buckets.
///
/// The layout: a 40-byte header (cookie, payload length, normalizing
/// offset 0, significant digits, lowest discernible value 1, highest
/// trackable value, integer-to-double ratio 1.0, all big-endian), then
/// every counter up to the last non-zero one as a zig-zag LEB128 varint,
/// a run of two or more zeros as its negated length. The highest trackable
/// value is what an auto-resizing histogram reports after recording these
/// values: 2 while they fit its first 2048 counters, else the top of its
/// last counter once it has grown to cover the largest.
pub fn encode_v2(entries: impl Iterator<Item = (u32, u64)>, out: &mut Vec<u8>) {
    const COOKIE: u32 = 0x1c84_9303 | 0x10;
    let start = out.len();
    out.extend_from_slice(&COOKIE.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // payload length, below
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&u32::from(super::stats::SIGNIFICANT_DIGITS).to_be_bytes());
    out.extend_from_slice(&1u64.to_be_bytes());
    let highest_at = out.len();
    out.extend_from_slice(&[0; 8]); // highest trackable value, below
    out.extend_from_slice(&1.0f64.to_be_bytes());
    let payload = out.len();
    let zigzag = |n: i64| ((n << 1) ^ (n >> 63)) as u64;
    let mut next = 0u32;
    let mut last = None;
    for (index, count) in entries {
        match index - next {
            0 => {}
            1 => put_varint(out, 0),
            zeros => put_varint(out, zigzag(-i64::from(zeros))),
        }
        put_varint(out, zigzag(count as i64));
        next = index + 1;
        last = Some(index);
    }
    let Some(last) = last else {
        out.truncate(start);
        return;
    };
    let initial_counters = 2 * HALF_COUNT as u32;
    let highest = if last < initial_counters {
        2
    } else {
        // Buckets needed for the largest value, and one more half: the
        // counters a resized histogram holds.
        let buckets = (last >> HALF_MAGNITUDE) as u64;
        highest_of(((buckets + 1) * HALF_COUNT - 1) as u32)
    };
    out[highest_at..highest_at + 8].copy_from_slice(&highest.to_be_bytes());
    let len = (out.len() - payload) as u32;
    out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    /// The sparse form of a dense histogram's buckets.
    fn from_histogram(h: &Histogram<u64>) -> Sparse {
        Sparse::from_sorted(
            h.iter_recorded()
                .map(|v| (index_of(v.value_iterated_to()), v.count_at_value())),
        )
    }

    /// The dense histogram holding exactly these buckets, to compare with
    /// `hdrhistogram`'s own. Each bucket is recorded at its lowest value,
    /// which lands in the same counter; the histogram grows to the same
    /// size as one the raw values were recorded into, so it encodes the same.
    fn to_histogram(entries: impl Iterator<Item = (u32, u64)>) -> Histogram<u64> {
        let mut h = Histogram::new(super::super::stats::SIGNIFICANT_DIGITS)
            .expect("3 significant digits is a valid HDR setting");
        for (i, c) in entries {
            // Auto-resizing histograms accept any u64.
            let _ = h.record_n(lowest_of(i), c);
        }
        h
    }

    /// Values of every magnitude, from 0 past u32::MAX.
    fn values() -> Vec<u64> {
        let mut out = vec![0, 1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for shift in 0..44 {
            for _ in 0..50 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.push(x >> (20 + shift));
            }
        }
        out
    }

    #[test]
    fn bucket_layout_is_hdrhistograms() {
        let h = Histogram::<u64>::new(super::super::stats::SIGNIFICANT_DIGITS).unwrap();
        let mut vs = values();
        vs.sort_unstable();
        let mut last = 0;
        for v in vs {
            let i = index_of(v);
            assert!(i >= last, "indices ascend with values: {v}");
            last = i;
            assert_eq!(lowest_of(i), h.lowest_equivalent(v), "lowest of {v}");
            assert_eq!(highest_of(i), h.highest_equivalent(v), "highest of {v}");
            assert_eq!(index_of(lowest_of(i)), i);
            assert_eq!(index_of(highest_of(i)), i);
        }
    }

    /// The skipping walk finds every non-zero bucket, wherever it falls
    /// against the runs it tests at once (first and last of a run, the
    /// last bucket of the array, runs of zeros longer than one run).
    #[test]
    fn counts_iterate_every_non_zero_bucket_in_order() {
        let patterns: [&[u32]; 6] = [
            &[],
            &[0],
            &[7, 8, 15, 16],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9],
            &[100, 2047, 2048, 5000],
            &[3, 1000, 12_287],
        ];
        for indices in patterns {
            let mut counts = Counts::default();
            indices
                .iter()
                .for_each(|&i| counts.add(i, u64::from(i) + 1));
            let naive: Vec<(u32, u64)> = (counts.counts.iter().enumerate())
                .filter(|(_, &c)| c > 0)
                .map(|(i, &c)| (i as u32, c))
                .collect();
            let expected: Vec<(u32, u64)> =
                indices.iter().map(|&i| (i, u64::from(i) + 1)).collect();
            assert_eq!(naive, expected, "{indices:?}");
            assert_eq!(counts.iter().collect::<Vec<_>>(), expected, "{indices:?}");
            let mut done = counts.iter();
            done.by_ref().for_each(drop);
            assert_eq!(done.next(), None, "stays done: {indices:?}");
        }
    }

    #[test]
    fn quantiles_and_encoding_equal_the_dense_histogram() {
        let all = values();
        for n in [1usize, 2, 3, 10, 33, 200, all.len()] {
            let vs = &all[..n];
            let mut h = Histogram::<u64>::new(3).unwrap();
            vs.iter().for_each(|&v| h.record(v).unwrap());
            let sparse = Sparse::from_values(vs);
            assert!(sparse == from_histogram(&h), "n={n}");
            // The live form holds the same buckets, in HDR's counts layout.
            let mut counts = Counts::default();
            vs.iter().for_each(|&v| counts.record(v));
            assert!(counts.iter().eq(sparse.iter()), "n={n}");
            let hdr_len = h.distinct_values();
            assert!(
                counts.counts.len() <= hdr_len.max(HALF_COUNT as usize * 2),
                "n={n}"
            );
            assert_eq!(
                counts.heap_bytes(),
                counts.counts.len() * 8,
                "grown exactly, n={n}"
            );
            let qs = [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0];
            let mut got = [0u64; 7];
            quantiles(sparse.iter(), &qs, &mut got).unwrap();
            for (q, got) in qs.iter().zip(got) {
                assert_eq!(got, h.value_at_quantile(*q), "n={n} q={q}");
            }
            let rebuilt = to_histogram(sparse.iter());
            assert_eq!(rebuilt.max(), h.max(), "n={n}");
            assert_eq!(rebuilt.len(), h.len(), "n={n}");
            let encode = |h: &Histogram<u64>| {
                let mut buf = Vec::new();
                hdrhistogram::serialization::Serializer::serialize(
                    &mut hdrhistogram::serialization::V2Serializer::new(),
                    h,
                    &mut buf,
                )
                .unwrap();
                buf
            };
            assert_eq!(encode(&rebuilt), encode(&h), "n={n}");
            let mut direct = vec![7];
            encode_v2(sparse.iter(), &mut direct);
            assert_eq!(direct[1..], encode(&h), "n={n}");
        }
    }

    #[test]
    fn merge_adds_bucket_by_bucket() {
        let all = values();
        let (a, b) = all.split_at(all.len() / 3);
        let merged = Sparse::from_values(a).merge(Sparse::from_values(b).iter());
        assert!(merged == Sparse::from_values(&all));
        // Merging with nothing, either way round, changes nothing.
        let empty = Sparse::from_values(&[]);
        assert!(empty.merge(merged.iter()) == merged);
        assert!(merged.merge(empty.iter()) == merged);
        // Large counts survive the varint.
        let big = Sparse::from_sorted([(5, u64::MAX / 2), (70_000, 3)].into_iter());
        assert_eq!(
            big.iter().collect::<Vec<_>>(),
            [(5, u64::MAX / 2), (70_000, 3)]
        );
    }

    #[test]
    fn a_bucket_takes_about_a_byte() {
        // A millisecond-ish latency seen 300 times: at most 500 buckets apart by 1 µs.
        let vs: Vec<u64> = (0..300u64).map(|k| 900 + k * 7_919 % 500).collect();
        let s = Sparse::from_values(&vs);
        let buckets = s.iter().count();
        let len = s.bytes().len();
        assert!(
            len <= buckets + buckets / 4,
            "{len} bytes for {buckets} buckets"
        );
    }
}
