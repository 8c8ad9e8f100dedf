//! The live loop: every tick, evaluate the windows that closed since the
//! last one, keep the latest results for the API and hand records to the
//! exporters.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;

use super::engine::{keep_last, Evaluation, Operators};
use super::records::{AnomalyEvent, AnomalyState, Hotspot, SignalRecord};
use crate::exporters::{Exporter, Record, Stream};
use crate::graph::pairing::PairingCounters;
use crate::graph::partial::WindowPartial;
use crate::graph::view::{ClusterView, DestinationView, PathView, WindowInfo};
use crate::graph::{ClosedWindow, Graph, GraphView, WindowSelect};

/// Recent anomaly events the API keeps.
const RECENT_EVENTS: usize = 1_000;
/// Evaluated windows whose signal records the API keeps (for `?since=`,
/// which the experiment runner polls so it misses no window).
const RECENT_WINDOWS: usize = 30;
/// ... and the records they may hold together: past this the oldest
/// windows go, never the newest [`RECENT_MIN_WINDOWS`]. A record is about
/// 600 bytes (its key, its target's names, a list of signals), and with
/// 10^5 edges a window has tens of thousands of them: 30 windows of
/// kilobyte records took most of a GiB.
const RECENT_RECORDS: usize = 100_000;
const RECENT_MIN_WINDOWS: usize = 3;
/// Records serialized and handed to the exporters at once. With 10^5 edges
/// a window's signal records are about 50 MB of JSON; serialized whole,
/// and copied again into the JSON lines buffer, they were the largest
/// swing of the soak's RSS. A chunk is about 2.5 MB.
const PUBLISH_CHUNK: usize = 4_096;

/// What the API serves: the latest evaluation's results.
#[derive(Default)]
pub struct Latest {
    pub signals: Arc<Vec<SignalRecord>>,
    /// The last few windows' records, oldest first (shared, not copied).
    pub recent_signals: VecDeque<Arc<Vec<SignalRecord>>>,
    pub hotspots: Vec<Hotspot>,
    /// Start events of anomalies open now.
    pub active: Vec<AnomalyEvent>,
    /// Recent start and end events, oldest first.
    pub events: VecDeque<AnomalyEvent>,
    pub paths: PathsDocument,
    /// Scenarios for the current ranking (regenerated when it changes).
    pub scenarios: Vec<crate::scenarios::Scenario>,
    pub windows_evaluated: u64,
    pub last_window_end_ms: u64,
}

/// `GET /api/paths`: the ranking view's paths, clusters and destinations.
#[derive(Default, Serialize)]
pub struct PathsDocument {
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    pub paths: Vec<PathView>,
    pub clusters: Vec<ClusterView>,
    pub destinations: Vec<DestinationView>,
}

pub type SharedLatest = Arc<RwLock<Latest>>;

impl Latest {
    /// Records of the recent windows ending after `since_ms`, oldest first,
    /// optionally of one target.
    pub fn signals_since(&self, since_ms: u64, key: Option<&str>) -> Vec<SignalRecord> {
        self.recent_signals
            .iter()
            .flat_map(|w| w.iter())
            .filter(|r| r.window_end_ms > since_ms)
            .filter(|r| key.is_none_or(|k| r.key == k))
            .cloned()
            .collect()
    }
}

pub struct Live {
    graph: Graph,
    operators: Operators,
    exporters: Vec<Arc<dyn Exporter>>,
    latest: SharedLatest,
    last_index: u64,
    /// The last `rank_windows` closed windows (shared with the graph).
    recent: VecDeque<(u64, Arc<WindowPartial>)>,
    /// Latest production time per (destination, key), across windows.
    produced: std::collections::HashMap<(String, Option<Arc<str>>), u64>,
    scenarios: Option<crate::scenarios::ScenarioSettings>,
    /// The ranking scenarios were last generated for (target keys in order).
    ranked: Vec<String>,
    /// The thread every evaluation runs on (see [`crate::background::Worker`]).
    worker: Arc<crate::background::Worker>,
}

impl Live {
    pub fn new(graph: Graph, operators: Operators, exporters: Vec<Arc<dyn Exporter>>) -> Live {
        Live {
            graph,
            operators,
            exporters,
            latest: SharedLatest::default(),
            last_index: 0,
            recent: VecDeque::new(),
            produced: Default::default(),
            scenarios: None,
            ranked: Vec::new(),
            worker: Arc::new(crate::background::Worker::new("faultline-operators")),
        }
    }

    /// Also generate scenarios (rules) whenever the ranking changes.
    pub fn with_scenarios(mut self, settings: crate::scenarios::ScenarioSettings) -> Live {
        self.scenarios = Some(settings);
        self
    }

    pub fn latest(&self) -> SharedLatest {
        self.latest.clone()
    }

    /// Evaluates every window closed since the last step.
    ///
    /// Evaluation is CPU work over every node and edge of the window (a
    /// view with quantiles, baselines, ranking); with 10^5 edges it takes
    /// most of a second, so it runs on a background thread
    /// ([`crate::background`]). On an async worker it held up the receivers
    /// and `/metrics` meanwhile (with the server pinned to one core there
    /// is only one worker), and at the same priority it still delayed
    /// export calls by its time slices.
    pub async fn step(mut self) -> anyhow::Result<Live> {
        let windows = self.graph.closed_after(self.last_index).await;
        if windows.is_empty() {
            return Ok(self);
        }
        let worker = self.worker.clone();
        Ok(worker
            .run(move || {
                for window in windows {
                    self.last_index = window.index;
                    self.exporters.iter().for_each(|e| e.window(&window));
                    let (eval, recent) = self.evaluate(window);
                    self.publish(&eval);
                    self.remember(eval, recent);
                }
                // What the evaluation freed (hundreds of MiB at 10^5 edges) is
                // not handed back here: the next window's evaluation needs as
                // much within the second, and the allocator keeps freed pages
                // a few seconds and then purges them lazily
                // (`memory_limiter::tune_allocator`). Forcing them back after
                // each evaluation made RSS swing by that much and the kernel
                // fault and zero the same pages again every second.
                self
            })
            .await?)
    }

    /// Evaluates one closed window; returns the evaluation and the view of
    /// the recent windows it ranked.
    fn evaluate(&mut self, w: ClosedWindow) -> (Evaluation, GraphView) {
        let window_ms = self.graph.settings().window_ms;
        let info = WindowInfo::new(WindowSelect::Current, window_ms, w.start_ms, w.end_ms);
        let mut view = GraphView::build(&w.partial, info, PairingCounters::default());
        self.carry_order(&w.partial, &mut view);
        self.recent.push_back((w.index, w.partial));
        let s = self.graph.settings();
        let budget = s.max_edges.saturating_mul(s.shards.max(1));
        keep_ranked(
            &mut self.recent,
            self.operators.settings().rank_windows,
            budget,
        );
        let recent = self.recent_view(window_ms, w.end_ms);
        let eval = self.operators.evaluate(&view, &recent);
        self.refresh_scenarios(&eval, &recent);
        (eval, recent)
    }

    /// Regenerates scenarios when the ranking's order of targets changed,
    /// and publishes them (stream `scenarios`).
    fn refresh_scenarios(&mut self, eval: &Evaluation, recent: &GraphView) {
        let Some(settings) = &self.scenarios else {
            return;
        };
        let ranked: Vec<String> = eval.hotspots.iter().map(|h| h.key.clone()).collect();
        if ranked == self.ranked {
            return;
        }
        self.ranked = ranked;
        let active = self.latest.read().active.clone();
        let scenarios = crate::scenarios::generate(recent, &eval.hotspots, &active, settings);
        tracing::debug!(
            hotspots = eval.hotspots.len(),
            edges = recent.edges.len(),
            scenarios = scenarios.len(),
            "scenarios regenerated"
        );
        let records: Vec<Record> = scenarios
            .iter()
            .map(|s| Record::new(Stream::Scenarios, s.target.key(), s))
            .collect();
        for e in &self.exporters {
            e.export(&records);
        }
        self.latest.write().scenarios = scenarios;
    }

    /// Re-counts out-of-order deliveries with the order carried over from
    /// earlier windows (a window alone cannot see a late message whose
    /// successor was consumed in the previous window).
    fn carry_order(&mut self, partial: &WindowPartial, view: &mut GraphView) {
        for d in &mut view.destinations {
            if let Some(stats) = partial.destinations.get(d.name.as_str()) {
                d.out_of_order = crate::graph::messaging::out_of_order(
                    &d.name,
                    &stats.deliveries,
                    &mut self.produced,
                );
            }
        }
        if self.produced.len() > 100_000 {
            self.produced.clear();
        }
    }

    fn recent_view(&self, window_ms: u64, end_ms: u64) -> GraphView {
        let mut merged = WindowPartial::default();
        for (_, p) in &self.recent {
            merged.merge(p);
        }
        let start = self.recent.front().map_or(0, |(i, _)| i * window_ms);
        let info = WindowInfo::new(
            WindowSelect::Last(self.recent.len()),
            window_ms,
            start,
            end_ms,
        );
        GraphView::build(&merged, info, PairingCounters::default())
    }

    /// Keeps the evaluation for the API (moved in: a window's signal
    /// records are tens of MiB at 10^5 edges).
    fn remember(&self, eval: Evaluation, recent: GraphView) {
        let mut latest = self.latest.write();
        latest.signals = Arc::new(eval.signals);
        let shared = latest.signals.clone();
        latest.recent_signals.push_back(shared);
        trim_recent(&mut latest.recent_signals);
        latest.hotspots = eval.hotspots;
        for e in eval.anomalies {
            match e.state {
                AnomalyState::Start => latest.active.push(e.clone()),
                AnomalyState::End => latest.active.retain(|a| a.id != e.id),
            }
            latest.events.push_back(e);
        }
        keep_last(&mut latest.events, RECENT_EVENTS);
        latest.paths = PathsDocument {
            window_start_ms: recent.window.start_ms,
            window_end_ms: recent.window.end_ms,
            paths: recent.paths,
            clusters: recent.clusters,
            destinations: recent.destinations,
        };
        latest.windows_evaluated += 1;
        latest.last_window_end_ms = recent.window.end_ms;
    }

    /// Hands a window's records to the exporters [`PUBLISH_CHUNK`] at a
    /// time, so only one chunk's JSON is alive at once.
    fn publish(&self, eval: &Evaluation) {
        if self.exporters.is_empty() {
            return;
        }
        in_chunks(records_of(eval), PUBLISH_CHUNK, |chunk| {
            self.exporters.iter().for_each(|e| e.export(chunk))
        });
    }

    pub fn flush(&self, timeout: std::time::Duration) {
        for e in &self.exporters {
            e.flush(timeout);
        }
    }
}

/// Keeps the last `rank` windows for ranking, and fewer when together they
/// hold more than `budget` entries (the entries the graph's shards keep in
/// closed windows, `max_edges` each); at least the newest. The graph keeps
/// fewer closed windows past that bound too. At 10^5 edges, ten windows
/// kept for ranking were about 120 MiB, and merging them every second as
/// much again; ranking then covers fewer windows (`/api/paths` says how
/// many).
fn keep_ranked(recent: &mut VecDeque<(u64, Arc<WindowPartial>)>, rank: usize, budget: usize) {
    keep_newest(recent, rank.max(1), 1, budget, |(_, p)| p.entries());
}

/// Drops the oldest windows' records past [`RECENT_WINDOWS`] windows or
/// [`RECENT_RECORDS`] records, keeping at least [`RECENT_MIN_WINDOWS`].
fn trim_recent(recent: &mut VecDeque<Arc<Vec<SignalRecord>>>) {
    keep_newest(
        recent,
        RECENT_WINDOWS,
        RECENT_MIN_WINDOWS,
        RECENT_RECORDS,
        |w| w.len(),
    );
}

/// Drops the oldest items while more than `most` are held, or while their
/// `size`s together exceed `budget` and more than `least` are held.
fn keep_newest<T>(
    queue: &mut VecDeque<T>,
    most: usize,
    least: usize,
    budget: usize,
    size: impl Fn(&T) -> usize,
) {
    let mut held: usize = queue.iter().map(&size).sum();
    while queue.len() > most || (queue.len() > least && held > budget) {
        match queue.pop_front() {
            Some(oldest) => held -= size(&oldest),
            None => break,
        }
    }
}

/// Signal, anomaly and hotspot records as the exporters and the API's
/// `live_*` tables take them, in that order, each serialized as it is drawn.
pub(crate) fn records<'a>(
    signals: &'a [SignalRecord],
    anomalies: &'a [AnomalyEvent],
    hotspots: &'a [Hotspot],
) -> impl Iterator<Item = Record> + 'a {
    let signals = signals
        .iter()
        .map(|r| Record::new(Stream::Signals, &r.key, r));
    let anomalies = anomalies
        .iter()
        .map(|a| Record::new(Stream::Anomalies, &a.key, a));
    let hotspots = hotspots
        .iter()
        .map(|h| Record::new(Stream::Hotspots, &h.key, h));
    signals.chain(anomalies).chain(hotspots)
}

/// A window's records, for [`Live::publish`].
fn records_of(eval: &Evaluation) -> impl Iterator<Item = Record> + '_ {
    records(&eval.signals, &eval.anomalies, &eval.hotspots)
}

/// Calls `each` with `records` in order, `size` at a time.
fn in_chunks(
    mut records: impl Iterator<Item = Record>,
    size: usize,
    mut each: impl FnMut(&[Record]),
) {
    let mut chunk = Vec::with_capacity(size);
    loop {
        chunk.extend(records.by_ref().take(size));
        if chunk.is_empty() {
            return;
        }
        each(&chunk);
        chunk.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(records: usize) -> Arc<Vec<SignalRecord>> {
        let record = SignalRecord {
            seq: 0,
            key: "a>b".into(),
            target: super::super::records::Target::Destination { name: "q".into() },
            window_start_ms: 0,
            window_end_ms: 1000,
            calls: 1,
            signals: Default::default(),
        };
        Arc::new(vec![record; records])
    }

    fn windows(nodes: &[usize]) -> VecDeque<(u64, Arc<WindowPartial>)> {
        let mut out = VecDeque::new();
        for (i, &n) in nodes.iter().enumerate() {
            let mut p = WindowPartial::default();
            for k in 0..n {
                let name: Arc<str> = format!("n{k}").into();
                p.node(&name, crate::graph::partial::NodeKind::Service);
            }
            out.push_back((i as u64, Arc::new(p)));
        }
        out
    }

    fn indexes(recent: &VecDeque<(u64, Arc<WindowPartial>)>) -> Vec<u64> {
        recent.iter().map(|(i, _)| *i).collect()
    }

    #[test]
    fn records_are_published_in_order_a_chunk_at_a_time() {
        let eval = Evaluation {
            signals: window(PUBLISH_CHUNK + 1).to_vec(),
            anomalies: Vec::new(),
            hotspots: Vec::new(),
        };
        let mut sizes = Vec::new();
        in_chunks(records_of(&eval), PUBLISH_CHUNK, |c| sizes.push(c.len()));
        assert_eq!(sizes, [PUBLISH_CHUNK, 1]);

        let numbered = (0..10).map(|i| Record::new(Stream::Signals, i.to_string(), &i));
        let mut seen = Vec::new();
        in_chunks(numbered, 4, |c| {
            assert!(c.len() <= 4);
            seen.extend(c.iter().map(|r| r.key.clone()));
        });
        let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(seen, expected, "every record once, in order");
    }

    #[test]
    fn ranking_keeps_its_windows_within_the_entry_budget() {
        let mut small = windows(&[5, 5, 5, 5]);
        keep_ranked(&mut small, 3, 100);
        assert_eq!(indexes(&small), [1, 2, 3], "the last `rank` windows");
        let mut large = windows(&[40, 40, 40, 40]);
        keep_ranked(&mut large, 3, 100);
        assert_eq!(indexes(&large), [2, 3], "80 entries fit, 120 do not");
        let mut huge = windows(&[500, 500]);
        keep_ranked(&mut huge, 3, 100);
        assert_eq!(indexes(&huge), [1], "the newest window always stays");
    }

    #[test]
    fn recent_signals_are_bounded_by_windows_and_by_records() {
        let mut recent = VecDeque::new();
        for _ in 0..40 {
            recent.push_back(window(10));
            trim_recent(&mut recent);
        }
        assert_eq!(recent.len(), RECENT_WINDOWS);
        // Large windows: only as many as fit in the record budget...
        for _ in 0..10 {
            recent.push_back(window(RECENT_RECORDS / 4));
            trim_recent(&mut recent);
        }
        assert_eq!(recent.len(), 4);
        // ... but never fewer than the minimum, however large.
        for _ in 0..5 {
            recent.push_back(window(RECENT_RECORDS));
            trim_recent(&mut recent);
        }
        assert_eq!(recent.len(), RECENT_MIN_WINDOWS);
    }
}
