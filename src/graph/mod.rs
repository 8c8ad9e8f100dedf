//! The interaction graph: pairing, windows, node and edge statistics.
//!
//! Data flow: a receiver hands a batch to [`Graph::ingest`], which splits it
//! by trace id over the shards (one thread each, see [`shard`]). A read
//! ([`Graph::view`]) asks every shard for a copy of its window in progress
//! and its closed windows, shared, and merges those into a [`GraphView`] on
//! the reader's thread (the closed ones once while they stay the same, see
//! [`closed_merge`]).

pub mod closed_merge;
pub mod histogram;
pub mod messaging;
pub mod naming;
pub mod pairing;
pub mod partial;
pub mod recent;
pub mod render;
pub mod settings;
pub mod shard;
pub mod stats;
pub mod symbols;
pub mod traces;
pub mod view;
pub mod window;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

pub use naming::NamingRule;
pub use settings::{GraphSettings, Limits};
pub use shard::{Shard, ShardSnapshot};
pub use view::GraphView;
pub use window::WindowSelect;

use crate::model::Span;
use crate::telemetry::ShardGauges;

/// Milliseconds since the Unix epoch, the clock windows and TTLs run on.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

enum Command {
    Spans(Vec<Span>),
    Tick,
    Snapshot(WindowSelect, oneshot::Sender<ShardSnapshot>),
    Closed(u64, oneshot::Sender<ClosedWindows>),
}

/// Closed windows one shard still holds, and its current window index.
pub(crate) type ClosedWindows = (Vec<(u64, Arc<partial::WindowPartial>)>, u64);

/// One closed window merged over shards, as the operators read it. With
/// one shard it is that shard's own window, shared rather than copied.
pub struct ClosedWindow {
    pub index: u64,
    pub start_ms: u64,
    pub end_ms: u64,
    pub partial: Arc<partial::WindowPartial>,
}

/// The live graph: a handle to the shard threads. Cheap to clone.
#[derive(Clone)]
pub struct Graph {
    shards: Arc<[mpsc::Sender<Command>]>,
    gauges: Arc<[Arc<ShardGauges>]>,
    limits: Arc<Limits>,
    /// The closed windows of the last read, merged (see [`closed_merge`]).
    closed: Arc<closed_merge::ClosedMerge>,
}

/// Batches a shard may have queued before receivers wait (backpressure).
///
/// Small on purpose: a batch is a request's share of spans (about 256 of
/// the standard 512, near 500 bytes each), and at full load the shards are
/// what is behind, so the queue stays full. 256 batches per shard held
/// about 60 MiB of decoded spans with two shards; 16 still give a shard
/// several milliseconds of work queued while the receivers decode.
const SHARD_QUEUE: usize = 16;

impl Graph {
    /// Starts one thread per shard. They stop when the last handle is dropped.
    pub fn start(settings: GraphSettings) -> Graph {
        let count = settings.shards.max(1);
        let limits = Arc::new(Limits::new(settings));
        let gauges: Arc<[Arc<ShardGauges>]> = (0..count).map(|_| Arc::default()).collect();
        let shards = gauges
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let (tx, rx) = mpsc::channel(SHARD_QUEUE);
                let shard = Shard::new(limits.clone());
                let g = g.clone();
                std::thread::Builder::new()
                    .name(format!("graph-shard-{i}"))
                    .spawn(move || run_shard(shard, rx, &g))
                    .expect("spawning a shard thread");
                tx
            })
            .collect();
        Graph {
            shards,
            gauges,
            limits,
            closed: Arc::default(),
        }
    }

    pub fn settings(&self) -> &GraphSettings {
        self.limits.settings()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Hands spans to their shards. Waits when a shard is behind, so a
    /// burst slows the senders down instead of growing memory.
    pub async fn ingest(&self, spans: Vec<Span>) {
        if spans.is_empty() {
            return;
        }
        for (shard, part) in self.split(spans).into_iter().enumerate() {
            if !part.is_empty() {
                // A closed channel means shutdown; the spans go with it.
                let _ = self.shards[shard].send(Command::Spans(part)).await;
            }
        }
    }

    fn split(&self, mut spans: Vec<Span>) -> Vec<Vec<Span>> {
        let n = self.shards.len();
        if n == 1 {
            return vec![spans];
        }
        let mut parts: Vec<Vec<Span>> = (0..n).map(|_| Vec::new()).collect();
        for span in spans.drain(..) {
            parts[shard_of(route_id(&span), n)].push(span);
        }
        crate::model::buffers::give(spans);
        parts
    }

    /// Pairing counters summed over shards, as last published (no round trip).
    pub fn pairing_counters(&self) -> pairing::PairingCounters {
        let mut total = pairing::PairingCounters::default();
        self.gauges.iter().for_each(|g| total.merge(&g.read()));
        total
    }

    /// Spans left out of trace assembly (`traces.max_traces` or
    /// `traces.max_open_spans` reached, or their trace outside the sample
    /// taken while short of room), summed over shards, as last published.
    pub fn traces_skipped(&self) -> u64 {
        self.gauges.iter().map(|g| g.traces_skipped()).sum()
    }

    /// Advances windows and expires pending pairs in every shard.
    pub async fn tick(&self) {
        for shard in self.shards.iter() {
            let _ = shard.send(Command::Tick).await;
        }
        self.closed.expire(now_ms());
    }

    /// Windows closed in every shard after index `after`, merged per index,
    /// oldest first. Only windows before every shard's current one are
    /// returned, so each is complete.
    pub async fn closed_after(&self, after: u64) -> Vec<ClosedWindow> {
        let mut replies = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            if shard.send(Command::Closed(after, tx)).await.is_ok() {
                replies.push(rx);
            }
        }
        let mut merged: std::collections::BTreeMap<u64, Vec<Arc<partial::WindowPartial>>> =
            Default::default();
        let mut current = u64::MAX;
        for rx in replies {
            let Ok((windows, index)) = rx.await else {
                continue;
            };
            current = current.min(index);
            for (i, p) in windows {
                merged.entry(i).or_default().push(p);
            }
        }
        let length = self.settings().window_ms;
        merged
            .into_iter()
            .filter(|(i, _)| *i < current)
            .map(|(index, parts)| ClosedWindow {
                index,
                start_ms: index * length,
                end_ms: (index + 1) * length,
                partial: merge_shared(parts),
            })
            .collect()
    }

    /// The merged graph over the selected windows.
    pub async fn view(&self, select: WindowSelect) -> GraphView {
        let (partial, pairing, start) = self.merged(select).await;
        view_of(&partial, pairing, start, select, self.settings().window_ms)
    }

    /// The selected windows merged into one partial (histograms and all),
    /// with the start of the earliest window covered: what SQL's live
    /// tables read.
    pub async fn partial(&self, select: WindowSelect) -> (partial::WindowPartial, u64) {
        let (merged, _, start) = self.merged(select).await;
        (merged, start.min(now_ms()))
    }

    /// The selected windows of every shard as one partial, with the
    /// shards' pairing counters and the start of the earliest window. The
    /// windows in progress are merged first, then the closed ones, whose
    /// merge the last read may have left (see [`closed_merge`]).
    async fn merged(
        &self,
        select: WindowSelect,
    ) -> (partial::WindowPartial, pairing::PairingCounters, u64) {
        let snapshots = self.snapshots(select).await;
        let mut merged = partial::WindowPartial::default();
        let mut pairing = pairing::PairingCounters::default();
        let mut start = u64::MAX;
        for s in &snapshots {
            merged.merge(&s.partial);
            pairing.merge(&s.pairing);
            start = start.min(s.window_start_ms);
        }
        let shared: Vec<_> = snapshots.into_iter().flat_map(|s| s.shared).collect();
        if !shared.is_empty() {
            merged.merge(&self.closed.merged(&shared, now_ms()));
        }
        (merged, pairing, start)
    }

    async fn snapshots(&self, select: WindowSelect) -> Vec<ShardSnapshot> {
        let mut replies = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            if shard.send(Command::Snapshot(select, tx)).await.is_ok() {
                replies.push(rx);
            }
        }
        let mut snapshots = Vec::with_capacity(replies.len());
        for rx in replies {
            if let Ok(s) = rx.await {
                snapshots.push(s);
            }
        }
        snapshots
    }
}

/// One window's partials from every shard, as one. A single shard's is
/// shared as it is; more are merged into a new partial.
fn merge_shared(parts: Vec<Arc<partial::WindowPartial>>) -> Arc<partial::WindowPartial> {
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Arc::default();
    };
    let mut rest = parts.peekable();
    if rest.peek().is_none() {
        return first;
    }
    let mut merged = Arc::unwrap_or_clone(first);
    rest.for_each(|p| merged.merge(&p));
    Arc::new(merged)
}

/// The trace id a span is routed by: its own, except for a CONSUMER that
/// links to its producer in another trace, which must meet that producer
/// in the producer's shard to pair.
fn route_id(span: &Span) -> &[u8; 16] {
    match span.links.first() {
        Some(link) if span.kind == crate::model::SpanKind::Consumer => &link.trace_id,
        _ => &span.trace_id,
    }
}

/// Routes a trace to a shard; the trace id is already random, so its low bytes will do.
fn shard_of(trace_id: &[u8; 16], shards: usize) -> usize {
    let low = u64::from_le_bytes(trace_id[8..16].try_into().unwrap_or([0; 8]));
    (low % shards as u64) as usize
}

fn run_shard(mut shard: Shard, mut rx: mpsc::Receiver<Command>, gauges: &ShardGauges) {
    crate::background::batch_policy();
    while let Some(command) = rx.blocking_recv() {
        let now = now_ms();
        match command {
            Command::Spans(spans) => {
                spans.iter().for_each(|s| shard.ingest(s, now));
                shard.read_quiet_traces(now);
                crate::model::buffers::give(spans);
                share_core(rx.len());
            }
            Command::Tick => shard.tick(now),
            Command::Snapshot(select, reply) => {
                shard.tick(now);
                let _ = reply.send(shard.snapshot(select));
            }
            Command::Closed(after, reply) => {
                shard.tick(now);
                let _ = reply.send(shard.closed_after(after));
            }
        }
        gauges.publish(&shard.pairing_counters(), shard.traces_skipped());
    }
}

/// Gives the core back to the receivers after a batch while the shard
/// keeps up; `queued` is the commands still waiting.
///
/// Shards run under `SCHED_BATCH` ([`crate::background::batch_policy`]).
/// A receiver hands its batch to a shard before it answers the export
/// call, and a shard woken by that hand-off took the core at once, so
/// every answer waited for its batch's aggregation; woken under
/// `SCHED_BATCH`, the shard waits until the receiver blocks on the
/// network, after it answered. When the scheduler tick hands the shard the
/// core anyway and little is queued, the receiver may still have answers
/// to write, so the shard yields after the batch. From [`BEHIND`] commands
/// queued (the receivers flat out) it does not: yielding after every
/// batch made the receivers and the shard take turns batch by batch
/// (36 k thread switches in 10 s against 3 k), and the core moved about
/// 8% fewer spans. Measured on one core: `docs/performance.md`, *Latency*.
fn share_core(queued: usize) {
    if (1..BEHIND).contains(&queued) {
        std::thread::yield_now();
    }
}

/// Commands queued from which a shard counts as behind (see [`share_core`]).
const BEHIND: usize = 2;

/// The view of `partial`, merged from windows that start at `start_ms`.
fn view_of(
    partial: &partial::WindowPartial,
    pairing: pairing::PairingCounters,
    start_ms: u64,
    select: WindowSelect,
    window_ms: u64,
) -> GraphView {
    let now = now_ms();
    let info = view::WindowInfo::new(select, window_ms, start_ms.min(now), now);
    GraphView::build(partial, info, pairing)
}

/// A graph built in the caller's thread, for offline imports and benchmarks.
pub struct OfflineGraph {
    shard: Shard,
    window_ms: u64,
}

impl OfflineGraph {
    pub fn new(settings: GraphSettings) -> OfflineGraph {
        let window_ms = settings.window_ms;
        OfflineGraph {
            shard: Shard::new(Arc::new(Limits::new(settings))),
            window_ms,
        }
    }

    pub fn ingest(&mut self, spans: &[Span]) {
        let now = now_ms();
        spans.iter().for_each(|s| self.shard.ingest(s, now));
    }

    /// Expires all pending pairs and returns everything since start as
    /// one partial (for SQL over imports).
    pub fn finish_partial(mut self) -> partial::WindowPartial {
        self.shard.flush(now_ms());
        let mut all = partial::WindowPartial::default();
        self.shard.snapshot(WindowSelect::All).merge_into(&mut all);
        all
    }

    /// Expires all pending pairs and returns the graph since start.
    pub fn finish(mut self) -> GraphView {
        self.shard.flush(now_ms());
        let snapshot = self.shard.snapshot(WindowSelect::All);
        let mut all = partial::WindowPartial::default();
        snapshot.merge_into(&mut all);
        let start = snapshot.window_start_ms;
        view_of(
            &all,
            snapshot.pairing,
            start,
            WindowSelect::All,
            self.window_ms,
        )
    }
}
