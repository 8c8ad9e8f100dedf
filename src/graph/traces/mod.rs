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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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
    /// Open traces per shard; spans of further traces are not assembled.
    pub max_traces: usize,
    /// Spans held in open traces per shard, the memory bound of assembly
    /// (about 70 bytes each with their buffers): past it, new traces are
    /// not assembled until open ones are read. Traces already open keep
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
            max_open_spans: 262_144,
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
}

/// Span buffers kept for reuse, and the largest one worth keeping: a trace
/// of thousands of spans should not pin its buffer forever.
const SPARE_BUFFERS: usize = 4_096;
const SPARE_CAPACITY: usize = 64;

/// Open traces of one shard.
pub struct TraceAssembler {
    settings: TraceSettings,
    open: HashMap<TraceId, TraceBuf, ahash::RandomState>,
    /// (deadline, trace) for every open trace: a trace whose deadline comes
    /// is read if it stayed quiet, or queued again at its new deadline.
    deadlines: BinaryHeap<Reverse<(u64, TraceId)>>,
    spare: Vec<Vec<SpanRec>>,
    reader: Reader,
    /// Spans in open traces' buffers (see `max_open_spans`).
    held: usize,
    /// Spans not assembled because `max_traces` traces or `max_open_spans`
    /// spans were open (each span
    /// of a trace that found no room counts once; exported as
    /// `faultline_trace_assembly_skipped_spans`).
    pub skipped: u64,
}

impl TraceAssembler {
    pub fn new(settings: TraceSettings) -> TraceAssembler {
        TraceAssembler {
            settings,
            open: HashMap::default(),
            deadlines: BinaryHeap::new(),
            spare: Vec::new(),
            reader: Reader::default(),
            held: 0,
            skipped: 0,
        }
    }

    pub fn settings(&self) -> &TraceSettings {
        &self.settings
    }

    /// Traces open now.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    pub fn add(&mut self, trace: TraceId, span: SpanRec, now_ms: u64) {
        let full = self.open.len() >= self.settings.max_traces
            || self.held >= self.settings.max_open_spans;
        let buf = match self.open.get_mut(&trace) {
            Some(buf) => buf,
            None if full => {
                self.skipped += 1;
                return;
            }
            None => {
                let spans = self.spare.pop().unwrap_or_default();
                self.deadlines
                    .push(Reverse((now_ms + self.settings.idle_ms, trace)));
                self.open.entry(trace).or_insert(TraceBuf {
                    spans,
                    last_ms: now_ms,
                })
            }
        };
        buf.last_ms = now_ms;
        if buf.spans.len() < self.settings.max_spans {
            buf.spans.push(span);
            self.held += 1;
        }
    }

    /// Reads and removes every trace quiet for `idle_ms`, handing each one's
    /// facts to `found`.
    pub fn expire(&mut self, now_ms: u64, mut found: impl FnMut(&TraceFacts)) {
        let idle = self.settings.idle_ms;
        while let Some(&Reverse((deadline, trace))) = self.deadlines.peek() {
            if deadline > now_ms {
                break;
            }
            self.deadlines.pop();
            let Some(last_ms) = self.open.get(&trace).map(|b| b.last_ms) else {
                continue;
            };
            if last_ms + idle > now_ms {
                self.deadlines.push(Reverse((last_ms + idle, trace)));
                continue;
            }
            self.finish(trace, &mut found);
        }
    }

    /// Reads and removes every open trace (end of an offline import).
    pub fn expire_all(&mut self, mut found: impl FnMut(&TraceFacts)) {
        while let Some(Reverse((_, trace))) = self.deadlines.pop() {
            self.finish(trace, &mut found);
        }
    }

    fn finish(&mut self, trace: TraceId, found: &mut impl FnMut(&TraceFacts)) {
        let Some(mut buf) = self.open.remove(&trace) else {
            return;
        };
        self.held -= buf.spans.len();
        found(self.reader.read(&buf.spans, self.settings.retry_gap_ns));
        if buf.spans.capacity() <= SPARE_CAPACITY && self.spare.len() < SPARE_BUFFERS {
            buf.spans.clear();
            self.spare.push(buf.spans);
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

    fn trace(n: u8) -> TraceId {
        [n; 16]
    }

    #[test]
    fn open_spans_are_bounded_and_freed_when_traces_are_read() {
        let mut a = TraceAssembler::new(TraceSettings {
            idle_ms: 100,
            max_open_spans: 3,
            ..TraceSettings::default()
        });
        a.add(trace(1), rec(1), 0);
        a.add(trace(1), rec(2), 0);
        a.add(trace(2), rec(3), 0);
        // Three spans held: a new trace finds no room, an open one still grows.
        a.add(trace(3), rec(4), 0);
        a.add(trace(1), rec(5), 10);
        assert_eq!((a.open(), a.skipped), (2, 1));
        let mut read = Vec::new();
        a.expire(100, |f| read.push(f.attempts.len()));
        assert_eq!(read.len(), 1, "trace 2 went quiet, trace 1 did not");
        a.expire(110, |_| read.push(0));
        assert_eq!((a.open(), read.len()), (0, 2));
        // Room again.
        a.add(trace(3), rec(6), 120);
        assert_eq!((a.open(), a.skipped), (1, 1));
    }
}
