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

use hdrhistogram::Histogram;

use super::client::Client;
use super::probe::{ProbeReport, ProbeSettings, Prober};
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
    /// Visibility probes sent while the load runs (see [`super::probe`]).
    pub probes: Option<ProbeSettings>,
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
    /// What the visibility probes saw, if any were sent.
    pub probes: Option<ProbeReport>,
}

impl Report {
    /// Spans the server should have accepted: sent, less those it refused,
    /// plus the probes' spans.
    pub fn expected_accepted(&self) -> u64 {
        self.spans_sent - self.spans_rejected + self.probes.as_ref().map_or(0, |p| p.spans_accepted)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot connect to {endpoint}: {message} (is the collector running there?)")]
    Connect { endpoint: String, message: String },
    #[error("cannot read the collector's metrics at {url}: {message}")]
    Metrics { url: String, message: String },
    #[error("cannot read faultline's API at {url}: {message} (probes need it: --api URL)")]
    Api { url: String, message: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("a load worker stopped: {0}")]
    Worker(String),
}

/// Runs the load and returns its report.
pub async fn run(config: LoadConfig) -> Result<Report, LoadError> {
    let templates = Arc::new(make_templates(&config)?);
    let request_bytes = templates[0].len();
    let http = reqwest::Client::new();
    let before = match &config.metrics_url {
        Some(url) => Some(accepted_spans(&http, url).await?),
        None => None,
    };
    let prober = match config.probes.clone().filter(|p| p.count > 0) {
        Some(settings) => Some((
            Prober::prepare(&http, settings).await?,
            Client::connect(&config, &http).await?,
        )),
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
    let interval = config
        .rate
        .filter(|r| *r > 0.0)
        .map(|rate| Duration::from_secs_f64(templates[0].spans() as f64 * workers as f64 / rate));
    for (i, client) in clients.into_iter().enumerate() {
        let worker = Worker {
            client,
            templates: templates.clone(),
            salt: salt.clone(),
            interval,
        };
        // At a rate, the workers take turns: worker i starts i/workers of an
        // interval late, so requests arrive evenly spaced. Started together,
        // they arrived in bursts of one request per worker, and the last of
        // each burst waited for the others (at 10 k spans/s, 8 connections
        // and 512-span requests: p50 7-8 ms on an idle server, not ~1 ms).
        let first = start
            + interval
                .unwrap_or_default()
                .mul_f64(i as f64 / workers as f64);
        tasks.spawn(worker.run(first, start + config.duration));
    }
    let probing =
        prober.map(|(prober, client)| tokio::spawn(prober.run(client, start, config.duration)));
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.map_err(|e| LoadError::Worker(e.to_string()))?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let probes = match probing {
        Some(task) => Some(task.await.map_err(|e| LoadError::Worker(e.to_string()))?),
        None => None,
    };
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
        probes,
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

pub(super) fn now_ns() -> u64 {
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
    /// Time between this worker's requests at the target rate.
    interval: Option<Duration>,
}

impl Worker {
    /// Sends from `first` (at a rate: every `interval` from then) until `deadline`.
    async fn run(mut self, first: Instant, deadline: Instant) -> Tally {
        let mut tally = Tally::default();
        let mut buf = Vec::new();
        let mut next = first;
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
            // Rendered (and compressed) before the clock starts: the time
            // is the collector's.
            let body = self.client.render(template, salt, now_ns(), &mut buf);
            let sent_at = Instant::now();
            let result = self.client.export(body).await;
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
