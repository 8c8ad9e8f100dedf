//! Visibility probes: how long after an export call a span shows up in
//! faultline's API while the load runs.
//!
//! Each probe is one small trace on its own connection — a CLIENT span in
//! `probe-<run>-<k>` and the SERVER span it parents in `probe-<run>-<k>-srv`
//! — so its edge exists nowhere else. From just before the export call, the
//! probe polls every [`POLL`]:
//!
//! * `GET /api/graph?window=N` until the edge is listed (N covers the
//!   probe's timeout, so a window closing meanwhile does not hide it);
//! * `GET /api/signals?target=edge:<client>-><server>&since=<send time>&open=true`
//!   until a signal record for the edge exists: in the window in progress
//!   (`open_window`, unjudged), and among the closed windows' records, which
//!   are judged and published once the window closes, so that delay
//!   includes waiting for the window to close.
//!
//! The delays include the export call itself and up to one poll interval
//! plus one API round trip of measurement slack.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use serde_json::Value;

use super::client::Client;
use super::run::{now_ns, LoadError};
use super::string_kv;

/// Time between two polls of the API by one probe.
pub const POLL: Duration = Duration::from_millis(10);
/// Spans in one probe.
const PROBE_SPANS: u64 = 2;

/// Probes to send during a run.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// Probes, spread evenly over the run.
    pub count: usize,
    /// faultline's HTTP API, e.g. `http://127.0.0.1:8080`.
    pub api: String,
    /// How long a probe waits for its edge and signal before counting them missed.
    pub timeout: Duration,
}

/// What the probes saw.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeReport {
    /// Probes whose export call succeeded, and failed.
    pub sent: u64,
    pub failed: u64,
    /// Spans the collector accepted from the probes (for the loss check).
    pub spans_accepted: u64,
    pub timeout_seconds: f64,
    /// Export call to the edge in `GET /api/graph`.
    pub graph: Visibility,
    /// Export call to a closed window's signal record of the edge in
    /// `GET /api/signals` (what the stream `signals` publishes).
    pub signals: Visibility,
    /// Export call to a record of the edge in `GET /api/signals?open=true`:
    /// in the open window (`open_window`), or already among the closed.
    pub open_signals: Visibility,
}

/// When one probe was first seen in each place (`None`: not in time).
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    graph: Option<Duration>,
    open_signals: Option<Duration>,
    signals: Option<Duration>,
}

impl Seen {
    fn all(&self) -> bool {
        self.graph.is_some() && self.open_signals.is_some() && self.signals.is_some()
    }
}

/// The delays of all probes to one place, and how many never got there.
#[derive(Default)]
struct Delays {
    ms: Vec<f64>,
    missed: u64,
}

impl Delays {
    fn add(&mut self, seen: Option<Duration>) {
        match seen {
            Some(d) => self.ms.push(d.as_secs_f64() * 1000.0),
            None => self.missed += 1,
        }
    }

    fn visibility(mut self) -> Visibility {
        Visibility::of(&mut self.ms, self.missed)
    }
}

/// Delays from export call to visibility, over the probes sent.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Visibility {
    pub seen: u64,
    /// Not seen within the timeout.
    pub missed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Visibility {
    fn of(delays: &mut [f64], missed: u64) -> Visibility {
        delays.sort_by(f64::total_cmp);
        Visibility {
            seen: delays.len() as u64,
            missed,
            p50_ms: quantile(delays, 0.5),
            p99_ms: quantile(delays, 0.99),
            max_ms: delays.last().copied().unwrap_or(0.0),
        }
    }
}

/// The nearest-rank quantile of sorted values: with fewer than 100 values,
/// p99 is the maximum.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Probes ready to run: the API answered and the window length is known.
pub(super) struct Prober {
    settings: ProbeSettings,
    http: reqwest::Client,
    /// `N` of `?window=N`: enough windows to cover a probe's timeout.
    windows: u64,
    /// Tells this run's probe services from an earlier run's.
    run: u64,
}

impl Prober {
    /// Checks that the API answers, and reads its window length.
    pub(super) async fn prepare(
        http: &reqwest::Client,
        settings: ProbeSettings,
    ) -> Result<Prober, LoadError> {
        let url = format!("{}/api/graph?window=current", settings.api);
        let fail = |message: String| LoadError::Api {
            url: url.clone(),
            message,
        };
        let graph = get_json(http, &url).await.map_err(fail)?;
        let length = graph["window"]["length_seconds"]
            .as_f64()
            .filter(|l| *l > 0.0)
            .ok_or_else(|| fail("the reply has no window.length_seconds".into()))?;
        let windows = ((settings.timeout.as_secs_f64() + 1.0) / length).ceil() as u64 + 1;
        Ok(Prober {
            settings,
            http: http.clone(),
            windows: windows.clamp(2, 10_000),
            run: (now_ns() >> 20) & 0xff_ffff,
        })
    }

    /// Sends one probe in each of `count` equal slots of
    /// `[start, start + duration)`, at a pseudo-random point of its slot, and
    /// waits for each to be seen or to time out.
    ///
    /// The random point matters: probes at a fixed spacing sample only a few
    /// phases of the window and tick (at 500 ms spacing, two), and their
    /// delays then say more about those phases than about the collector.
    pub(super) async fn run(
        self,
        client: Client,
        start: Instant,
        duration: Duration,
    ) -> ProbeReport {
        let count = self.settings.count.max(1);
        let spacing = duration / count as u32;
        let mut tasks = tokio::task::JoinSet::new();
        let probe = std::sync::Arc::new(self);
        for k in 0..count {
            let at = start + spacing * k as u32 + spacing.mul_f64(unit(probe.run, k));
            let (probe, client) = (probe.clone(), client.clone());
            tasks.spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                probe.one(client, k).await
            });
        }
        let (mut graph, mut signals, mut open) = Default::default();
        let (mut sent, mut failed, mut spans_accepted) = (0, 0, 0);
        while let Some(done) = tasks.join_next().await {
            let Ok(Some((accepted, seen))) = done else {
                failed += 1;
                continue;
            };
            sent += 1;
            spans_accepted += accepted;
            Delays::add(&mut graph, seen.graph);
            Delays::add(&mut signals, seen.signals);
            Delays::add(&mut open, seen.open_signals);
        }
        ProbeReport {
            sent,
            failed,
            spans_accepted,
            timeout_seconds: probe.settings.timeout.as_secs_f64(),
            graph: Delays::visibility(graph),
            signals: Delays::visibility(signals),
            open_signals: Delays::visibility(open),
        }
    }

    /// One probe: spans accepted, then when it was seen in the graph and
    /// the signals. `None` if the export failed.
    async fn one(&self, mut client: Client, k: usize) -> Option<(u64, Seen)> {
        let caller = format!("probe-{:06x}-{k}", self.run);
        let callee = format!("{caller}-srv");
        let trace = (self.run << 32 | k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let request = probe_request(&caller, &callee, trace, now_ns());
        let body = client.body(&prost::Message::encode_to_vec(&request));
        let api = &self.settings.api;
        let graph_url = format!("{api}/api/graph?window={}", self.windows);
        let signals_url = format!("{api}/api/signals");
        let key = format!("edge:{caller}->{callee}");
        let since = (now_ns() / 1_000_000).saturating_sub(1).to_string();
        let query = [
            ("target", key.as_str()),
            ("since", since.as_str()),
            ("open", "true"),
        ];
        let sent_at = Instant::now();
        let rejected = client.export(body).await.ok()?;
        let deadline = sent_at + self.settings.timeout;
        let mut seen = Seen::default();
        loop {
            if seen.graph.is_none() {
                if let Ok(v) = get_json(&self.http, &graph_url).await {
                    if has_edge(&v, &caller, &callee) {
                        seen.graph = Some(sent_at.elapsed());
                    }
                }
            }
            if seen.signals.is_none() {
                let request = self.http.get(&signals_url).query(&query);
                if let Ok(v) = send_json(request).await {
                    let now = sent_at.elapsed();
                    // With `open=true` the span is visible in either part:
                    // a probe sent just before a window closes may be read
                    // first among the closed windows' records.
                    if has_records(&v["open_window"]) || has_records(&v) {
                        seen.open_signals.get_or_insert(now);
                    }
                    if has_records(&v) {
                        seen.signals = Some(now);
                    }
                }
            }
            if seen.all() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Some((PROBE_SPANS.saturating_sub(rejected), seen))
    }
}

fn has_records(doc: &Value) -> bool {
    doc["records"].as_array().is_some_and(|r| !r.is_empty())
}

/// A pseudo-random number in `[0, 1)` for probe `k` of run `run`.
fn unit(run: u64, k: usize) -> f64 {
    let mut x = (run << 32 ^ k as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

fn has_edge(graph: &Value, source: &str, target: &str) -> bool {
    graph["edges"].as_array().is_some_and(|edges| {
        edges
            .iter()
            .any(|e| e["source"] == source && e["target"] == target)
    })
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    send_json(http.get(url)).await
}

async fn send_json(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

/// One call from `caller` to `callee`: a CLIENT span and the SERVER span
/// it parents, ending now.
pub fn probe_request(
    caller: &str,
    callee: &str,
    trace: u64,
    now_ns: u64,
) -> ExportTraceServiceRequest {
    let mut trace_id = trace.to_le_bytes().to_vec();
    trace_id.extend_from_slice(&trace.rotate_left(29).to_le_bytes());
    let client_id = (trace ^ 0x5a5a).to_le_bytes().to_vec();
    let span = |id: Vec<u8>, parent: Vec<u8>, kind: span::SpanKind, start: u64, end: u64| Span {
        trace_id: trace_id.clone(),
        span_id: id,
        parent_span_id: parent,
        name: "GET /probe".into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    };
    let client = span(
        client_id.clone(),
        Vec::new(),
        span::SpanKind::Client,
        now_ns - 2_000_000,
        now_ns,
    );
    let server = span(
        (trace ^ 0xa5a5).to_le_bytes().to_vec(),
        client_id,
        span::SpanKind::Server,
        now_ns - 1_500_000,
        now_ns - 500_000,
    );
    let resource = |service: &str, span: Span| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![string_kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![resource(caller, client), resource(callee, server)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{GraphSettings, OfflineGraph};
    use crate::receivers::otlp_proto;

    #[test]
    fn a_probe_is_one_edge_of_its_own() {
        let request = probe_request("probe-1", "probe-1-srv", 77, 1_700_000_000_000_000_000);
        let batch = otlp_proto::to_batch(request);
        assert_eq!(batch.spans.len() as u64, PROBE_SPANS);
        let mut graph = OfflineGraph::new(GraphSettings::default());
        graph.ingest(&batch.spans);
        let view = graph.finish();
        let edge = view
            .edge("probe-1", "probe-1-srv")
            .expect("the probe's edge");
        assert_eq!(edge.calls, 1);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 100.0);
        assert_eq!(quantile(&values, 0.99), 198.0);
        assert_eq!(quantile(&values[..10], 0.99), 10.0);
        assert_eq!(quantile(&[], 0.99), 0.0);
        let mut delays = vec![30.0, 10.0, 20.0];
        let v = Visibility::of(&mut delays, 1);
        assert_eq!((v.seen, v.missed, v.p50_ms, v.max_ms), (3, 1, 20.0, 30.0));
    }

    #[test]
    fn probe_times_spread_over_their_slots() {
        let points: Vec<f64> = (0..1000).map(|k| unit(0x12_3456, k)).collect();
        assert!(points.iter().all(|u| (0.0..1.0).contains(u)));
        for tenth in 0..10 {
            let lo = tenth as f64 / 10.0;
            let n = points
                .iter()
                .filter(|u| (lo..lo + 0.1).contains(*u))
                .count();
            assert!((60..140).contains(&n), "{n} of 1000 in [{lo}, {lo} + 0.1)");
        }
    }

    #[test]
    fn edges_are_found_in_the_graph_json() {
        let graph = serde_json::json!({"edges": [{"source": "a", "target": "b"}]});
        assert!(has_edge(&graph, "a", "b"));
        assert!(!has_edge(&graph, "b", "a"));
        assert!(!has_edge(&serde_json::json!({}), "a", "b"));
    }
}
