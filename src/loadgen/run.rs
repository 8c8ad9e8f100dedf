//! Drives load against an OTLP collector: `concurrency` workers, each with
//! its own connection, send rendered [`Template`]s at a target rate or flat
//! out, time every export call, and count what the collector said it took.
//!
//! What was sent is checked against what the server says it accepted
//! (faultline's `/metrics`, read before and after), so a run reports loss
//! rather than hiding it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes};
use hdrhistogram::Histogram;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::template::{Template, TemplateError};
use super::{Generator, SpanShape};

/// The OTLP transport to send with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http,
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub protocol: Protocol,
    /// `http://host:4317` for gRPC; the full URL (`http://host:4318/v1/traces`) for HTTP.
    pub endpoint: String,
    pub shape: SpanShape,
    /// Target spans per second over all workers; `None` sends flat out.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub concurrency: usize,
    pub gzip: bool,
    /// faultline's `/metrics` URL, read before and after to report what it accepted.
    pub metrics_url: Option<String>,
    /// Distinct request templates to rotate through.
    pub templates: usize,
}

/// What a run did, as the command prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub protocol: &'static str,
    pub requests: u64,
    pub failed_requests: u64,
    /// Spans in requests the collector answered with success.
    pub spans_sent: u64,
    /// Of those, spans the collector refused (`partial_success.rejected_spans`).
    pub spans_rejected: u64,
    pub elapsed_seconds: f64,
    pub spans_per_second: f64,
    pub request_bytes: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// Growth of `faultline_receiver_accepted_spans_total` over the run.
    pub server_accepted: Option<u64>,
    /// The first failed call's error, worded by the client library or server.
    pub first_error: Option<String>,
}

impl Report {
    /// Spans the server should have accepted: sent, less those it refused.
    pub fn expected_accepted(&self) -> u64 {
        self.spans_sent - self.spans_rejected
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot connect to {endpoint}: {message} (is the collector running there?)")]
    Connect { endpoint: String, message: String },
    #[error("cannot read the collector's metrics at {url}: {message}")]
    Metrics { url: String, message: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("a load worker stopped: {0}")]
    Worker(String),
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Runs the load and returns its report.
pub async fn run(config: LoadConfig) -> Result<Report, LoadError> {
    let templates = Arc::new(make_templates(&config)?);
    let request_bytes = templates[0].len();
    let http = reqwest::Client::new();
    let before = match &config.metrics_url {
        Some(url) => Some(accepted_spans(&http, url).await?),
        None => None,
    };
    let mut clients = Vec::with_capacity(config.concurrency.max(1));
    for _ in 0..config.concurrency.max(1) {
        clients.push(Client::connect(&config, &http).await?);
    }
    let salt = Arc::new(AtomicU64::new(1));
    let start = Instant::now();
    let workers = clients.len();
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let worker = Worker {
            client,
            templates: templates.clone(),
            salt: salt.clone(),
            gzip: config.gzip && config.protocol == Protocol::Http,
            interval: config.rate.filter(|r| *r > 0.0).map(|rate| {
                Duration::from_secs_f64(templates[0].spans() as f64 * workers as f64 / rate)
            }),
        };
        tasks.spawn(worker.run(start, start + config.duration));
    }
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.map_err(|e| LoadError::Worker(e.to_string()))?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = match &config.metrics_url {
        Some(url) => Some(accepted_spans(&http, url).await?),
        None => None,
    };
    let ms = |q: f64| total.latency.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        protocol: match config.protocol {
            Protocol::Grpc => "otlp_grpc",
            Protocol::Http => "otlp_http",
        },
        requests: total.requests,
        failed_requests: total.failed,
        spans_sent: total.spans,
        spans_rejected: total.rejected,
        elapsed_seconds: elapsed,
        spans_per_second: total.spans as f64 / elapsed.max(1e-9),
        request_bytes,
        latency_p50_ms: ms(0.5),
        latency_p99_ms: ms(0.99),
        latency_max_ms: total.latency.max() as f64 / 1000.0,
        server_accepted: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
        first_error: total.first_error,
    })
}

fn make_templates(config: &LoadConfig) -> Result<Vec<Template>, LoadError> {
    let mut generator = Generator::new(config.shape.clone(), 0x5eed);
    let base = now_ns();
    (0..config.templates.max(1))
        .map(|_| {
            let request = generator.request(base);
            Ok(Template::new(
                prost::Message::encode_to_vec(&request),
                base,
            )?)
        })
        .collect()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Sums `faultline_receiver_accepted_spans_total` over receivers.
async fn accepted_spans(http: &reqwest::Client, url: &str) -> Result<u64, LoadError> {
    let fail = |message: String| LoadError::Metrics {
        url: url.to_owned(),
        message,
    };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    let text = response.text().await.map_err(|e| fail(e.to_string()))?;
    Ok(parse_accepted(&text))
}

/// The sum of every `faultline_receiver_accepted_spans_total` sample in a
/// Prometheus/OpenMetrics text page.
pub fn parse_accepted(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("faultline_receiver_accepted_spans_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// One worker's counts.
struct Tally {
    requests: u64,
    failed: u64,
    spans: u64,
    rejected: u64,
    /// Export-call latency in microseconds.
    latency: Histogram<u64>,
    first_error: Option<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            requests: 0,
            failed: 0,
            spans: 0,
            rejected: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds"),
            first_error: None,
        }
    }
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.spans += other.spans;
        self.rejected += other.rejected;
        let _ = self.latency.add(&other.latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

struct Worker {
    client: Client,
    templates: Arc<Vec<Template>>,
    salt: Arc<AtomicU64>,
    gzip: bool,
    /// Time between this worker's requests at the target rate.
    interval: Option<Duration>,
}

impl Worker {
    async fn run(mut self, start: Instant, deadline: Instant) -> Tally {
        let mut tally = Tally::default();
        let mut buf = Vec::new();
        let mut next = start;
        loop {
            if let Some(interval) = self.interval {
                tokio::time::sleep_until(next.into()).await;
                next += interval;
            }
            if Instant::now() >= deadline {
                break;
            }
            let salt = self.salt.fetch_add(1, Ordering::Relaxed);
            let template = &self.templates[salt as usize % self.templates.len()];
            template.render(salt, now_ns(), &mut buf);
            let body = if self.gzip {
                gzip(&buf)
            } else {
                Bytes::copy_from_slice(&buf)
            };
            let sent_at = Instant::now();
            let result = self.client.export(body, self.gzip).await;
            let micros = sent_at.elapsed().as_micros() as u64;
            let _ = tally.latency.record(micros.max(1));
            tally.requests += 1;
            match result {
                Ok(rejected) => {
                    tally.spans += template.spans() as u64;
                    tally.rejected += rejected;
                }
                Err(e) => {
                    tally.failed += 1;
                    tally.first_error.get_or_insert(e);
                }
            }
        }
        tally
    }
}

fn gzip(bytes: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default().into()
}

/// One connection to the collector.
enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    Http { http: reqwest::Client, url: String },
}

impl Client {
    async fn connect(config: &LoadConfig, http: &reqwest::Client) -> Result<Client, LoadError> {
        let fail = |message: String| LoadError::Connect {
            endpoint: config.endpoint.clone(),
            message,
        };
        match config.protocol {
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::new(config.endpoint.clone())
                    .map_err(|e| fail(e.to_string()))?
                    .connect()
                    .await
                    .map_err(|e| fail(format!("{e}: {}", source_of(&e))))?;
                let mut grpc = tonic::client::Grpc::new(channel);
                if config.gzip {
                    grpc = grpc.send_compressed(CompressionEncoding::Gzip);
                }
                Ok(Client::Grpc(grpc))
            }
            Protocol::Http => Ok(Client::Http {
                http: http.clone(),
                url: config.endpoint.clone(),
            }),
        }
    }

    /// Sends one encoded request; the spans the server refused, or why it failed.
    async fn export(&mut self, body: Bytes, gzipped: bool) -> Result<u64, String> {
        match self {
            Client::Grpc(grpc) => {
                grpc.ready().await.map_err(|e| e.to_string())?;
                let path = EXPORT_PATH.parse().map_err(|e| format!("{e}"))?;
                let response = grpc
                    .unary(tonic::Request::new(body), path, RawCodec)
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                Ok(rejected(&response.into_inner()))
            }
            Client::Http { http, url } => {
                let mut request = http
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf");
                if gzipped {
                    request = request.header("content-encoding", "gzip");
                }
                let response = request.body(body).send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                let reply: ExportTraceServiceResponse =
                    prost::Message::decode(bytes).map_err(|e| e.to_string())?;
                Ok(rejected(&reply))
            }
        }
    }
}

fn rejected(reply: &ExportTraceServiceResponse) -> u64 {
    reply
        .partial_success
        .as_ref()
        .map_or(0, |p| p.rejected_spans.max(0) as u64)
}

fn source_of(e: &dyn std::error::Error) -> String {
    e.source().map(ToString::to_string).unwrap_or_default()
}

/// Sends pre-encoded request bytes and decodes the OTLP response.
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct ResponseDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        prost::Message::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_spans_are_summed_over_receivers() {
        let page = "# HELP faultline_receiver_accepted_spans Spans accepted, by receiver.\n\
            # TYPE faultline_receiver_accepted_spans counter\n\
            faultline_receiver_accepted_spans_total{receiver=\"otlp_grpc\"} 1024\n\
            faultline_receiver_accepted_spans_total{receiver=\"otlp_http\"} 512\n\
            faultline_receiver_refused_spans_total{receiver=\"otlp_grpc\"} 7\n";
        assert_eq!(parse_accepted(page), 1536);
        assert_eq!(parse_accepted(""), 0);
    }
}
