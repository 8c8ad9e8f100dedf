//! Trace assembly: a trace's spans are gathered until it goes quiet, then
//! read as a whole for what no single pair of spans shows — the paths a
//! request took, the set of edges it crossed (its cluster) and retries.
//!
//! Shards own their assembler, and spans are routed by trace id, so a trace
//! is always whole in one shard. Only a compact record of each span is kept
//! (ids, times, names as [`Sym`]s), and the number of open traces is capped;
//! traces past the cap are counted, not assembled.
//!
//! Every span passes through here, so the steady state allocates nothing:
//! span buffers of finished traces are reused for new ones, traces expire
//! from a deadline queue (no sweep over every open trace per tick), and the
//! [`Reader`] keeps its working space between traces.

mod read;
mod record;

use std::collections::VecDeque;

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

pub use read::{PathFact, Reader, TraceEdge, TraceFacts};
pub use record::{cluster_views, path_views, Recorder};

use super::partial::NodeKind;
use super::symbols::Sym;
use crate::model::{SpanKind, TraceId};

/// Knobs of trace assembly (`processors.graph.traces`).
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// A trace is read once no span arrived for it for this long.
    pub idle_ms: u64,
    /// Open traces per shard; spans of further traces are not assembled
    /// (and short of room, a sample of traces is: see `Sample`).
    pub max_traces: usize,
    /// Span records open traces' buffers have room for, per shard: the
    /// memory bound of assembly (56 bytes a record, empty room included;
    /// buffers kept for reuse stay within it too, see `spare_room`). Past
    /// it, new traces are not assembled until open ones are read, and
    /// then only a sample of them (see `Sample`). Traces already open keep
    /// their spans, up to `max_spans` each.
    pub max_open_spans: usize,
    /// Spans kept per trace; later ones are ignored for assembly.
    pub max_spans: usize,
    /// Two sibling calls to the same peer and operation, the first failed,
    /// the second starting within this gap after it ended: a retry.
    pub retry_gap_ns: u64,
    /// Distinct paths and clusters kept per window and shard.
    pub max_paths: usize,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            idle_ms: 2_000,
            max_traces: 100_000,
            max_open_spans: 131_072,
            max_spans: 1_000,
            retry_gap_ns: 1_000_000_000,
            max_paths: 1_000,
        }
    }
}

/// What the assembler keeps of one span: 56 bytes.
#[derive(Debug, Clone, Copy)]
pub struct SpanRec {
    /// The span id as a little-endian integer; 0 for none.
    pub span_id: u64,
    pub parent: u64,
    pub start: u64,
    pub end: u64,
    pub service: Sym,
    /// The span name (the operation).
    pub name: Sym,
    /// For CLIENT/PRODUCER spans: the database or named peer, else
    /// [`Symbols::NONE`](super::symbols::Symbols::NONE).
    pub peer: Sym,
    /// `http.request.resend_count`, where the instrumentation sets it.
    pub resend: Option<u32>,
    pub peer_kind: NodeKind,
    pub kind: SpanKind,
    pub failed: bool,
}

struct TraceBuf {
    spans: Vec<SpanRec>,
    last_ms: u64,
    /// The trace id's [`sample_hash`]: which traces are above the
    /// sample's bound when it moves, and when the last of them is read.
    hash: u64,
}

/// The largest span buffer kept for reuse: a trace of thousands of spans
/// should not pin its buffer forever. How many are kept is bounded by room
/// (see `TraceAssembler::spare_room`).
const SPARE_CAPACITY: usize = 64;

/// Open traces of one shard.
pub struct TraceAssembler {
    settings: TraceSettings,
    /// Hashed, and held in hashbrown's map, as the pairing store's ids are
    /// (see `PairingStore`).
    open: HashMap<TraceId, TraceBuf, foldhash::fast::RandomState>,
    /// Every open trace under its deadline: a trace whose deadline comes
    /// is read if it stayed quiet, or queued again at its new deadline.
    deadlines: Deadlines,
    spare: Vec<Vec<SpanRec>>,
    /// Records the spare buffers have room for. Spares are kept while
    /// they and the open traces' buffers together have room for at most
    /// `max_open_spans` records, so at full load assembly reuses buffers
    /// instead of freeing some and allocating others: that churn left
    /// 9–25 MiB of freed pages in RSS, lazily freed, at 1.7–1.9 M spans/s.
    spare_room: usize,
    reader: Reader,
    /// Records open traces' buffers have room for, filled or not (see
    /// `max_open_spans`). Why room, not spans: a buffer doubles as it
    /// grows, so a trace of 9 spans holds room for 16, and a bound on
    /// spans let the memory of assembly reach nearly twice what it named.
    held: usize,
    /// Spans not assembled because `max_traces` traces were open, open
    /// traces had room for `max_open_spans` records, or their trace was
    /// outside the [`Sample`] (each such span counts once; exported as
    /// `faultline_trace_assembly_skipped_spans`).
    pub skipped: u64,
    sample: Sample,
}

impl TraceAssembler {
    pub fn new(settings: TraceSettings) -> TraceAssembler {
        TraceAssembler {
            deadlines: Deadlines::new(settings.idle_ms),
            settings,
            open: HashMap::default(),
            spare: Vec::new(),
            spare_room: 0,
            reader: Reader::default(),
            held: 0,
            skipped: 0,
            sample: Sample::new(),
        }
    }

    pub fn settings(&self) -> &TraceSettings {
        &self.settings
    }

    /// Traces open now.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Records open traces' buffers have room for (what `max_open_spans`
    /// bounds).
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn add(&mut self, trace: TraceId, span: SpanRec, now_ms: u64) {
        self.add_with(trace, now_ms, || span);
    }

    /// [`TraceAssembler::add`], with the record made only once it has a
    /// place. Why: a record made first and passed in was copied from the
    /// stack with 16-byte loads just after the narrow stores that wrote it,
    /// which cannot be forwarded from pending stores and wait for them.
    #[inline]
    pub fn add_with(&mut self, trace: TraceId, now_ms: u64, span: impl FnOnce() -> SpanRec) {
        let hash = sample_hash(&trace);
        if hash >= self.sample.open_below {
            // Outside the sample, and no open trace is: no lookup.
            self.skipped += 1;
            return;
        }
        let full = self.open.len() >= self.settings.max_traces
            || self.held >= self.settings.max_open_spans;
        let buf = match self.open.entry(trace) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if full || hash >= self.sample.admit_below => {
                self.sample.pressed |= full && hash < self.sample.admit_below;
                self.skipped += 1;
                return;
            }
            Entry::Vacant(e) => {
                let spans = self.spare.pop().unwrap_or_default();
                self.spare_room -= spans.capacity();
                self.held += spans.capacity();
                self.deadlines.push(now_ms + self.settings.idle_ms, trace);
                e.insert(TraceBuf {
                    spans,
                    last_ms: now_ms,
                    hash,
                })
            }
        };
        buf.last_ms = now_ms;
        if buf.spans.len() < self.settings.max_spans {
            let room = buf.spans.capacity();
            buf.spans.push(span());
            self.held += buf.spans.capacity() - room;
        }
    }

    /// Reads and removes every trace quiet for `idle_ms`, handing each one's
    /// facts to `found`.
    pub fn expire(&mut self, now_ms: u64, mut found: impl FnMut(&TraceFacts)) {
        if now_ms >= self.sample.next_ms {
            self.adjust_sample(now_ms);
        }
        let idle = self.settings.idle_ms;
        while let Some(mut due) = self.deadlines.pop_due(now_ms) {
            for trace in due.drain(..) {
                // One lookup per due trace: the entry is a cache miss (the
                // trace was last touched `idle` ago), and a second lookup
                // to remove it cost as much again.
                let Entry::Occupied(entry) = self.open.entry(trace) else {
                    continue;
                };
                let last_ms = entry.get().last_ms;
                if last_ms + idle > now_ms {
                    self.deadlines.push(last_ms + idle, trace);
                    continue;
                }
                let buf = entry.remove();
                self.finish(buf, &mut found);
            }
            self.deadlines.recycle(due);
        }
    }

    /// Reads and removes every open trace (end of an offline import).
    pub fn expire_all(&mut self, mut found: impl FnMut(&TraceFacts)) {
        while let Some(mut due) = self.deadlines.pop_due(u64::MAX) {
            for trace in due.drain(..) {
                if let Some(buf) = self.open.remove(&trace) {
                    self.finish(buf, &mut found);
                }
            }
        }
    }

    /// Reads a trace taken out of `open`, and keeps its buffer for reuse
    /// when the bound allows.
    fn finish(&mut self, mut buf: TraceBuf, found: &mut impl FnMut(&TraceFacts)) {
        self.held -= buf.spans.capacity();
        self.sample.closed(buf.hash);
        found(self.reader.read(&buf.spans, self.settings.retry_gap_ns));
        let room = buf.spans.capacity();
        if room <= SPARE_CAPACITY
            && self.spare_room + self.held + room <= self.settings.max_open_spans
        {
            buf.spans.clear();
            self.spare_room += room;
            self.spare.push(buf.spans);
        }
    }
}

impl TraceAssembler {
    /// Narrows the sample when a trace in it found no room since the last
    /// look, and widens it again once room is left over (see [`Sample`]).
    fn adjust_sample(&mut self, now_ms: u64) {
        let settings = &self.settings;
        let idle = settings.idle_ms;
        let roomy = self.held <= settings.max_open_spans / 4 * 3
            && self.open.len() <= settings.max_traces / 4 * 3;
        let s = &mut self.sample;
        s.next_ms = now_ms.saturating_add((idle / SAMPLE_LOOKS).max(1));
        // Down at most once per half `idle`: a step down frees room only
        // as the traces taken before it are read, an `idle` or more later,
        // so without the pause one burst of pressure would take the bound
        // down by a step at every look.
        let admit_below = if s.pressed && now_ms >= s.lowered_ms.saturating_add(idle / 2) {
            s.lowered_ms = now_ms;
            s.admit_below - s.admit_below / 4
        } else if !s.pressed && roomy {
            s.admit_below.saturating_add(s.admit_below / 3)
        } else {
            s.pressed = false;
            return;
        };
        s.pressed = false;
        if admit_below == s.admit_below {
            return;
        }
        // Widening with none above: all open traces stay below.
        let above = if admit_below > s.admit_below && s.above == 0 {
            0
        } else {
            self.open.values().filter(|b| b.hash >= admit_below).count()
        };
        self.sample.set_bound(admit_below, above);
        debug_assert!(self.open.values().all(|b| b.hash < self.sample.open_below));
    }
}

/// Which traces assembly takes when it is short of room: those whose id
/// hashes below a bound, so the same traces are taken for all their spans
/// (more of them whole than when the first to find room was taken), and a
/// span of a trace outside the bound is skipped without a lookup in the
/// open traces. Why: at full load about 93% of spans find no room, and
/// that lookup in a map of some 10^4 open traces (a cache miss on its
/// control bytes) was 3.6% of the server's cycles, mostly for spans it
/// then skipped. With room to spare the bound is the whole range and every
/// trace is taken, as before. A trace can still be taken in part: when a
/// trace inside the bound found no room for its first spans, or the bound
/// widened while it was under way.
///
/// The bound moves in steps, looked at a few times per `idle`
/// (`SAMPLE_LOOKS`): down by a quarter after a trace inside it found no
/// room (at most once per half `idle`), up by a third when none did since
/// the last look and the open traces are at most three quarters of
/// `max_open_spans` and of `max_traces`. Traces already open when it moves
/// down keep their spans until they are read: lookups go on up to the old
/// bound (`open_below`) while any of them is open.
struct Sample {
    /// New traces are taken when their [`sample_hash`] is below this.
    admit_below: u64,
    /// Every open trace's hash is below this, so a span at or above it
    /// cannot belong to one.
    open_below: u64,
    /// Open traces with a hash at or above `admit_below`.
    above: usize,
    /// A trace inside the bound found no room since the last look.
    pressed: bool,
    next_ms: u64,
    /// When the bound last moved down.
    lowered_ms: u64,
}

/// Looks at the sample's bound per `idle`.
const SAMPLE_LOOKS: u64 = 8;

impl Sample {
    fn new() -> Sample {
        Sample {
            admit_below: u64::MAX,
            open_below: u64::MAX,
            above: 0,
            pressed: false,
            next_ms: 0,
            lowered_ms: 0,
        }
    }

    /// Sets the bound, with `above` of the open traces at or above it.
    fn set_bound(&mut self, admit_below: u64, above: usize) {
        self.admit_below = admit_below;
        self.above = above;
        self.open_below = if above == 0 {
            admit_below
        } else {
            self.open_below.max(admit_below)
        };
    }

    /// A trace with `hash` was read and is no longer open.
    fn closed(&mut self, hash: u64) {
        if hash >= self.admit_below && self.above > 0 {
            self.above -= 1;
            if self.above == 0 {
                self.open_below = self.admit_below;
            }
        }
    }
}

/// A trace id's place in the sample: both halves folded and multiplied, so
/// ids that are not random (counters, test ids) spread over the range too.
#[inline]
fn sample_hash(trace: &TraceId) -> u64 {
    let (high, low) = trace.split_at(8);
    let fold = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
    // Below `u64::MAX`, so with the bound at the whole range every trace is in.
    (fold(high) ^ fold(low).rotate_left(32))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .min(u64::MAX - 1)
}

/// Open traces by deadline, in buckets of a few milliseconds: queuing a
/// trace is a push onto its bucket's list, and expiry takes whole buckets
/// oldest first. A binary heap did the same with a log-n sift through a
/// 10^5-entry heap per trace, a cache miss at each level (3.5% of decode
/// and aggregate, by perf). The price is precision: a trace is read up to
/// one bucket (1/64 of `idle`) after its deadline.
struct Deadlines {
    /// Milliseconds per bucket.
    width: u64,
    /// The bucket number (deadline / width) of `buckets[0]`.
    first: u64,
    buckets: VecDeque<Vec<TraceId>>,
    /// Emptied bucket lists, kept for reuse.
    spare: Vec<Vec<TraceId>>,
}

/// Buckets per `idle` span: a 2 s idle time gives 31 ms buckets.
const BUCKETS_PER_IDLE: u64 = 64;
/// Buckets held at most, so a clock that jumps ahead cannot make the queue
/// long: deadlines live within `idle` plus the time between expiries.
const MAX_BUCKETS: usize = 4 * BUCKETS_PER_IDLE as usize;

impl Deadlines {
    fn new(idle_ms: u64) -> Deadlines {
        Deadlines {
            width: (idle_ms / BUCKETS_PER_IDLE).max(1),
            first: 0,
            buckets: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// Queues `trace` at `deadline_ms`. A deadline before the first bucket
    /// (a clock that stepped back) joins the first bucket, and one past the
    /// last (a clock that jumped) the last: early is safe, since a trace
    /// found still active when its bucket comes is queued again.
    fn push(&mut self, deadline_ms: u64, trace: TraceId) {
        let bucket = deadline_ms / self.width;
        if self.buckets.is_empty() {
            self.first = bucket;
        }
        let i = (bucket.saturating_sub(self.first) as usize).min(MAX_BUCKETS - 1);
        while self.buckets.len() <= i {
            let list = self.spare.pop().unwrap_or_default();
            self.buckets.push_back(list);
        }
        self.buckets[i].push(trace);
    }

    /// The oldest bucket, once every deadline it may hold has passed at
    /// `now_ms`; hand its list back with [`Deadlines::recycle`].
    fn pop_due(&mut self, now_ms: u64) -> Option<Vec<TraceId>> {
        let end = (self.first + 1).saturating_mul(self.width);
        if self.buckets.is_empty() || end > now_ms.saturating_add(1) {
            return None;
        }
        self.first += 1;
        self.buckets.pop_front()
    }

    fn recycle(&mut self, list: Vec<TraceId>) {
        if self.spare.len() < BUCKETS_PER_IDLE as usize * 2 {
            self.spare.push(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::symbols::Symbols;

    fn rec(span_id: u64) -> SpanRec {
        SpanRec {
            span_id,
            parent: 0,
            start: 1,
            end: 2,
            service: 0,
            name: 0,
            peer: Symbols::NONE,
            resend: None,
            peer_kind: NodeKind::Service,
            kind: SpanKind::Server,
            failed: false,
        }
    }

    /// An assembler reading traces after 100 ms of quiet.
    fn assembler(max_open_spans: usize) -> TraceAssembler {
        TraceAssembler::new(TraceSettings {
            idle_ms: 100,
            max_open_spans,
            ..TraceSettings::default()
        })
    }

    fn trace(n: u8) -> TraceId {
        [n; 16]
    }

    #[test]
    fn a_trace_is_read_within_one_bucket_of_its_deadline_whatever_the_clock_does() {
        let mut a = TraceAssembler::new(TraceSettings {
            idle_ms: 2_000, // 31 ms buckets
            ..TraceSettings::default()
        });
        let mut read = 0;
        a.add(trace(1), rec(1), 10_000);
        a.expire(11_999, |_| read += 1);
        assert_eq!(read, 0, "not before its deadline");
        a.expire(12_031, |_| read += 1);
        assert_eq!(read, 1, "within one bucket after it");
        // The clock jumps an hour ahead, then steps back: the trace added
        // on the step back waits for the first bucket, not past it.
        a.add(trace(2), rec(2), 3_600_000);
        a.add(trace(3), rec(3), 3_500_000);
        a.expire(3_601_000, |_| read += 1);
        assert_eq!(read, 1);
        a.expire(3_602_100, |_| read += 1);
        assert_eq!((read, a.open()), (3, 0));
        // A deadline far past the last bucket is queued early, found
        // still active and queued again: never read before it is quiet.
        a.add(trace(4), rec(4), 4_000_000);
        a.add(trace(5), rec(5), 10_000_000);
        a.expire(4_010_000, |_| read += 1);
        assert_eq!((read, a.open()), (4, 1));
        a.expire(10_001_999, |_| read += 1);
        assert_eq!(read, 4);
        a.expire(10_002_031, |_| read += 1);
        assert_eq!((read, a.open()), (5, 0));
    }

    #[test]
    fn open_buffers_are_bounded_by_their_room_and_freed_when_traces_are_read() {
        let mut a = assembler(8);
        // A trace's first buffer has room for 4 records, whatever it holds.
        a.add(trace(1), rec(1), 0);
        a.add(trace(2), rec(2), 0);
        assert_eq!(a.held(), 8);
        // Room for 8 is taken: a new trace finds none, an open one still
        // grows (its buffer doubles, 4 -> 8).
        a.add(trace(3), rec(3), 0);
        (4..=8).for_each(|id| a.add(trace(1), rec(id), 10));
        assert_eq!((a.open(), a.skipped, a.held()), (2, 1, 12));
        let mut read = Vec::new();
        a.expire(100, |f| read.push(f.attempts.len()));
        assert_eq!(read.len(), 1, "trace 2 went quiet, trace 1 did not");
        // Its buffer is freed, not kept: with trace 1's room for 8, open
        // and spare buffers would have room for 12, over the bound.
        assert_eq!((a.held(), a.spare_room), (8, 0));
        a.expire(110, |_| read.push(0));
        assert_eq!((a.open(), read.len(), a.held()), (0, 2, 0));
        assert_eq!(a.spare_room, 8, "trace 1's buffer is kept");
        // Room again. The new trace reuses trace 1's buffer: its room for
        // 8 counts from the start, and a ninth span doubles it.
        a.add(trace(3), rec(1), 120);
        assert_eq!((a.open(), a.skipped, a.held(), a.spare_room), (1, 1, 8, 0));
        (2..=9).for_each(|id| a.add(trace(3), rec(id), 120));
        assert_eq!(a.held(), 16);
    }

    /// Trace ids whose sample hash is at or above `below` (or under it).
    fn ids_hashing(above: bool, below: u64, count: usize) -> Vec<TraceId> {
        (1..u32::MAX)
            .map(|n| {
                let mut id = [0; 16];
                id[..4].copy_from_slice(&n.to_le_bytes());
                id[15] = 1;
                id
            })
            .filter(|id| (sample_hash(id) >= below) == above)
            .take(count)
            .collect()
    }

    #[test]
    fn with_room_to_spare_every_trace_is_taken() {
        let mut a = assembler(TraceSettings::default().max_open_spans);
        let mut read = 0;
        for step in 0..100u64 {
            let now = step * 10;
            let id = ids_hashing(true, 0, 1 + step as usize)[step as usize];
            (1..=3).for_each(|s| a.add(id, rec(s), now));
            a.expire(now, |_| read += 1);
        }
        a.expire(10_000, |_| read += 1);
        assert_eq!((read, a.skipped), (100, 0));
        assert_eq!(a.sample.admit_below, u64::MAX);
    }

    #[test]
    fn short_of_room_the_sample_narrows_and_widens_again() {
        let mut a = assembler(64);
        let ids = ids_hashing(true, 0, 4_000);
        let mut next = ids.iter();
        let mut read = 0;
        // Ten new traces of three spans every 10 ms: room for about two.
        for step in 0..200u64 {
            let now = step * 10;
            for id in next.by_ref().take(10) {
                (1..=3).for_each(|s| a.add(*id, rec(s), now));
            }
            a.expire(now, |_| read += 1);
            assert!(a.held() <= 64 + 4, "room is bounded: {}", a.held());
        }
        let narrowed = a.sample.admit_below;
        assert!(narrowed < u64::MAX / 2, "narrowed to {narrowed:x}");
        assert!(read > 0 && a.skipped > 0);
        // One trace every 10 ms fits: the bound widens back to everything.
        for step in 200..400u64 {
            let now = step * 10;
            for id in next.by_ref().take(1) {
                (1..=3).for_each(|s| a.add(*id, rec(s), now));
            }
            a.expire(now, |_| read += 1);
        }
        assert_eq!(a.sample.admit_below, u64::MAX);
        let skipped = a.skipped;
        let id = ids_hashing(true, u64::MAX / 4 * 3, 1)[0];
        a.add(id, rec(1), 4_000);
        assert_eq!(
            a.skipped, skipped,
            "a trace high in the range is taken again"
        );
    }

    #[test]
    fn traces_open_when_the_sample_narrows_keep_their_spans() {
        let mut a = assembler(8);
        let high = ids_hashing(true, u64::MAX / 4 * 3, 3);
        let low = ids_hashing(false, u64::MAX / 4, 1)[0];
        // Two traces high in the range take the room; a third finds none.
        a.add(high[0], rec(1), 0);
        a.add(high[1], rec(1), 0);
        a.add(high[2], rec(1), 0);
        assert_eq!(a.skipped, 1);
        a.expire(60, |_| {});
        assert_eq!(a.sample.admit_below, u64::MAX - u64::MAX / 4);
        assert_eq!(
            a.sample.above, 2,
            "both open traces are above the new bound"
        );
        // The open ones still take spans; a new one above the bound does not.
        a.add(high[0], rec(2), 70);
        a.add(high[1], rec(2), 70);
        assert_eq!(a.skipped, 1);
        a.add(high[2], rec(2), 70);
        assert_eq!(a.skipped, 2);
        // Once both are read, spans above the bound skip the lookup.
        let mut spans = Vec::new();
        a.expire(200, |f| spans.push(f.edges.len()));
        assert_eq!((spans.len(), a.sample.above), (2, 0));
        assert_eq!(a.sample.open_below, a.sample.admit_below);
        // With room again, a trace above the bound is still not taken.
        assert_eq!(a.held(), 0);
        a.add(high[2], rec(3), 210);
        assert_eq!((a.open(), a.skipped), (0, 3));
        a.add(low, rec(1), 210);
        assert_eq!(
            (a.open(), a.skipped),
            (1, 3),
            "a trace below the bound is taken"
        );
    }
}
