//! A two-service system on loopback for experiment tests: `front` serves
//! `GET /` and calls `back` through whatever address it is given (a fault
//! proxy listener). Both are instrumented by hand with OTLP spans (SERVER
//! and CLIENT, W3C `traceparent` between them) flushed to faultline every
//! 100 ms, and every request's latency is kept so a test can compare what
//! it saw with what faultline measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status, ResourceSpans, ScopeSpans, Span, Status,
};
use parking_lot::Mutex;
use prost::Message;

use super::kv;
use super::traffic::now_ns;

static IDS: AtomicU64 = AtomicU64::new(0x5151_0000_0000);

fn id8() -> [u8; 8] {
    IDS.fetch_add(1, Ordering::Relaxed).to_be_bytes()
}

/// Spans waiting to be sent, per service.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(&'static str, Span)>>>);

impl Spans {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        service: &'static str,
        kind: SpanKind,
        trace: [u8; 16],
        id: [u8; 8],
        parent: Option<[u8; 8]>,
        start: u64,
        failed: bool,
    ) {
        let span = Span {
            trace_id: trace.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: format!("{service} GET /"),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: now_ns(),
            status: failed.then(|| Status {
                code: status::StatusCode::Error as i32,
                message: "upstream failed".into(),
            }),
            ..Default::default()
        };
        self.0.lock().push((service, span));
    }

    fn take(&self) -> ExportTraceServiceRequest {
        let spans = std::mem::take(&mut *self.0.lock());
        ExportTraceServiceRequest {
            resource_spans: spans
                .into_iter()
                .map(|(service, span)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", service)],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span],
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }
}

/// One request the traffic driver made.
#[derive(Clone, Copy, Debug)]
pub struct Observed {
    pub sent_ms: u64,
    pub done_ms: u64,
    pub ok: bool,
}

pub struct System {
    pub back: SocketAddr,
    pub front: SocketAddr,
    pub observed: Arc<Mutex<Vec<Observed>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for System {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

async fn serve(router: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

fn parent_of(headers: &HeaderMap) -> Option<([u8; 16], [u8; 8])> {
    let tp = headers.get("traceparent")?.to_str().ok()?;
    let parts: Vec<&str> = tp.split('-').collect();
    let trace = hex::decode(parts.get(1)?).ok()?.try_into().ok()?;
    let span = hex::decode(parts.get(2)?).ok()?.try_into().ok()?;
    Some((trace, span))
}

async fn back_handler(State(spans): State<Spans>, headers: HeaderMap) -> &'static str {
    let start = now_ns();
    let (trace, parent) = parent_of(&headers).unwrap_or(([9; 16], [9; 8]));
    spans.push(
        "back",
        SpanKind::Server,
        trace,
        id8(),
        Some(parent),
        start,
        false,
    );
    "ok"
}

#[derive(Clone)]
struct Front {
    spans: Spans,
    upstream: String,
    http: reqwest::Client,
}

async fn front_handler(State(f): State<Front>) -> StatusCode {
    let start = now_ns();
    let trace: [u8; 16] = [id8(), id8()].concat().try_into().unwrap();
    let (root, client) = (id8(), id8());
    let traceparent = format!("00-{}-{}-01", hex::encode(trace), hex::encode(client));
    let reply = f
        .http
        .get(&f.upstream)
        .header("traceparent", traceparent)
        .send()
        .await;
    let ok = matches!(&reply, Ok(r) if r.status().is_success());
    if let Ok(r) = reply {
        let _ = r.bytes().await;
    }
    let client_start = start;
    f.spans.push(
        "front",
        SpanKind::Client,
        trace,
        client,
        Some(root),
        client_start,
        !ok,
    );
    f.spans
        .push("front", SpanKind::Server, trace, root, None, start, !ok);
    if ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    }
}

/// Sends buffered spans to faultline every 100 ms.
fn flusher(spans: Spans, otlp_url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut beat = tokio::time::interval(Duration::from_millis(100));
        loop {
            beat.tick().await;
            let body = spans.take();
            if body.resource_spans.is_empty() {
                continue;
            }
            let _ = http
                .post(&otlp_url)
                .header("content-type", "application/x-protobuf")
                .body(body.encode_to_vec())
                .send()
                .await;
        }
    })
}

/// Starts `back`; `front_upstream` maps back's address to the address
/// front should call (e.g. a proxy listener created for it).
pub async fn start<F, Fut>(otlp_url: &str, front_upstream: F) -> System
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = SocketAddr>,
{
    let spans = Spans::default();
    let (back, back_task) = serve(
        Router::new()
            .route("/", get(back_handler))
            .with_state(spans.clone()),
    )
    .await;
    let via = front_upstream(back).await;
    let front_state = Front {
        spans: spans.clone(),
        upstream: format!("http://{via}/"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    };
    let (front, front_task) = serve(
        Router::new()
            .route("/", get(front_handler))
            .with_state(front_state),
    )
    .await;
    System {
        back,
        front,
        observed: Arc::default(),
        tasks: vec![back_task, front_task, flusher(spans, otlp_url.to_owned())],
    }
}

impl System {
    /// Starts a request to front every 50 ms (not waiting for answers, so
    /// the rate holds while the dependency is slow) until the system drops.
    pub fn drive(&mut self) {
        let url = format!("http://{}/", self.front);
        let observed = self.observed.clone();
        self.tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut beat = tokio::time::interval(Duration::from_millis(50));
            loop {
                beat.tick().await;
                let (http, url, observed) = (http.clone(), url.clone(), observed.clone());
                tokio::spawn(async move {
                    let sent_ms = now_ns() / 1_000_000;
                    let ok = http
                        .get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    observed.lock().push(Observed {
                        sent_ms,
                        done_ms: now_ns() / 1_000_000,
                        ok,
                    });
                });
            }
        }));
    }
}
