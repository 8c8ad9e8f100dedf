//! `faultline loadgen`: synthetic OTLP load against a collector, with the
//! figures that say how it coped.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::loadgen::probe::{ProbeSettings, Visibility};
use crate::loadgen::run::{self, LoadConfig, Protocol, Report};
use crate::loadgen::SpanShape;

/// The options of `faultline loadgen`; the command's manual is the doc
/// comment of its variant in `main.rs`, where clap reads it.
#[derive(Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// Transport: `grpc` (OTLP/gRPC, TraceService/Export) or `http`
    /// (OTLP/HTTP, POST of application/x-protobuf).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Grpc)]
    pub protocol: ProtocolArg,

    /// Where to send. For gRPC the server's URL (default
    /// `http://127.0.0.1:4317`); for HTTP the full URL of the traces path
    /// (default `http://127.0.0.1:4318/v1/traces`).
    #[arg(long)]
    pub endpoint: Option<String>,

    /// Target rate in spans per second over all connections. Without it,
    /// each connection sends its next request as soon as the previous one is
    /// answered (flat out), which measures the collector's capacity.
    #[arg(long)]
    pub rate: Option<f64>,

    /// How long to send, e.g. `10s`, `2m`. Requests in flight at the end
    /// are waited for and counted.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Connections, each with one request in flight at a time. More than
    /// one is needed to keep a multi-core collector busy.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,

    /// Spans per export request (rounded down to an even number: calls are
    /// sent as client/server pairs).
    #[arg(long, default_value_t = 512)]
    pub batch: usize,

    /// Distinct services (`svc-0` ... `svc-N-1`). Callees rotate through them.
    #[arg(long, default_value_t = 5)]
    pub services: usize,

    /// Levels of calls in a trace below its root caller. Default: services - 1,
    /// a chain through every service.
    #[arg(long)]
    pub depth: Option<usize>,

    /// Calls each caller makes at each level: 1 gives chains, more gives
    /// trees of fan-out^depth leaf calls (cut where a request is full).
    #[arg(long, default_value_t = 1)]
    pub fan_out: usize,

    /// Spread calls over this many distinct caller -> callee edges (about
    /// sqrt(N) services, each calling about sqrt(N) others) instead of
    /// rotating through `--services`, e.g. `--edges 100000` for the soak
    /// benchmark. Enough distinct requests are prepared to cover every edge
    /// (each is encoded once, so large values take memory here).
    #[arg(long, default_value_t = 0)]
    pub edges: usize,

    /// Attributes per span besides `http.response.status_code`; the
    /// standard shape's 9 plus that one make the 10 of the benchmarks.
    #[arg(long, default_value_t = 9)]
    pub attributes: usize,

    /// Bytes in each attribute value (12 gives spans of about 300 bytes).
    #[arg(long, default_value_t = 12)]
    pub attribute_size: usize,

    /// Share of calls that fail, 0 to 1: both sides get status ERROR and
    /// HTTP 503, so the graph shows the error rate on every edge.
    #[arg(long, default_value_t = 0.02)]
    pub error_ratio: f64,

    /// Compress requests with gzip (gRPC message compression, or
    /// `Content-Encoding: gzip` for HTTP), at level 1, before the export
    /// call's clock starts. Compression costs the load generator CPU too:
    /// with one core for it, gzip lowers the rate it can offer.
    #[arg(long)]
    pub gzip: bool,

    /// faultline's metrics URL, e.g. `http://127.0.0.1:8080/metrics`. Read
    /// before and after the run to report what the server accepted.
    #[arg(long)]
    pub metrics: Option<String>,

    /// Send N visibility probes, evenly over the run: each is one small
    /// trace with a service pair of its own (`probe-<run>-<k>` calls
    /// `probe-<run>-<k>-srv`), sent on its own connection, after which
    /// faultline's API is polled every 10 ms until the edge is in
    /// `GET /api/graph` and a signal record for it is in
    /// `GET /api/signals?open=true`: in the window in progress
    /// (`open_window`), and among the closed windows' records (which exist
    /// once the probe's window has closed and been evaluated). Prints
    /// p50/p99/max of the three delays, measured from the export call.
    /// Needs faultline's API (--api, or --metrics).
    #[arg(long, default_value_t = 0)]
    pub probes: usize,

    /// faultline's HTTP API for the probes, e.g. `http://127.0.0.1:8080`.
    /// Default: --metrics without its `/metrics` path.
    #[arg(long)]
    pub api: Option<String>,

    /// How long a probe waits to be seen before it counts as missed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub probe_timeout: Duration,

    /// Print the report as one JSON object instead of text (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProtocolArg {
    Grpc,
    Http,
}

impl LoadgenArgs {
    /// The run these arguments describe.
    pub fn config(&self) -> LoadConfig {
        let protocol = match self.protocol {
            ProtocolArg::Grpc => Protocol::Grpc,
            ProtocolArg::Http => Protocol::Http,
        };
        let endpoint = self.endpoint.clone().unwrap_or_else(|| {
            match protocol {
                Protocol::Grpc => "http://127.0.0.1:4317",
                Protocol::Http => "http://127.0.0.1:4318/v1/traces",
            }
            .to_owned()
        });
        LoadConfig {
            protocol,
            endpoint,
            shape: SpanShape {
                services: self.services.max(2),
                depth: self.depth.unwrap_or(self.services.max(2) - 1).max(1),
                fan_out: self.fan_out.max(1),
                attributes: self.attributes,
                attribute_len: self.attribute_size,
                batch: self.batch.max(2),
                error_ratio: self.error_ratio,
                edges: self.edges,
            },
            rate: self.rate,
            duration: self.duration,
            concurrency: self.concurrency.max(1),
            gzip: self.gzip,
            metrics_url: self.metrics.clone(),
            templates: self.templates(),
            probes: self.probe_settings(),
        }
    }

    /// The probes to send, if any; without an API URL the run fails when it
    /// starts, with a message that says so.
    fn probe_settings(&self) -> Option<ProbeSettings> {
        (self.probes > 0).then(|| ProbeSettings {
            count: self.probes,
            api: self
                .api
                .clone()
                .or_else(|| {
                    let metrics = self.metrics.as_deref()?;
                    Some(metrics.strip_suffix("/metrics")?.to_owned())
                })
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            timeout: self.probe_timeout,
        })
    }
}

impl LoadgenArgs {
    /// Distinct requests to rotate through: 16, or with `--edges` enough
    /// calls to visit every edge about twice.
    fn templates(&self) -> usize {
        let calls = (self.batch / 2).max(1);
        16.max((2 * self.edges).div_ceil(calls))
    }
}

/// Entry point of `faultline loadgen`.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    if args.probes > 0 && args.api.is_none() && args.metrics.is_none() {
        anyhow::bail!("--probes needs faultline's API: pass --api http://HOST:PORT (or --metrics)");
    }
    let report = run::run(args.config()).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if report.requests > 0 && report.failed_requests == report.requests {
        anyhow::bail!(
            "every export call failed; first error: {}",
            report.first_error.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

/// The text report.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "{}: {} spans in {} requests ({} bytes each) over {:.2} s: {:.0} spans/s\n",
        r.protocol,
        r.spans_sent,
        r.requests,
        r.request_bytes,
        r.elapsed_seconds,
        r.spans_per_second
    );
    out += &format!(
        "export latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        r.latency_p50_ms, r.latency_p99_ms, r.latency_max_ms
    );
    if r.failed_requests > 0 {
        out += &format!(
            "failed requests: {} (first: {})\n",
            r.failed_requests,
            r.first_error.as_deref().unwrap_or("?")
        );
    }
    if r.spans_rejected > 0 {
        out += &format!("spans refused by the server: {}\n", r.spans_rejected);
    }
    match r.server_accepted {
        Some(accepted) => {
            let expected = r.expected_accepted();
            out += &format!(
                "server accepted: {accepted} spans (expected {expected}; unaccounted {})\n",
                expected as i64 - accepted as i64
            );
        }
        None => out += "server accepted: not read (pass --metrics URL)\n",
    }
    if let Some(p) = &r.probes {
        out += &format!(
            "visibility ({} probes, {} failed to send, timeout {:.0} s):\n",
            p.sent, p.failed, p.timeout_seconds
        );
        out += &visibility_line("in /api/graph", &p.graph);
        out += &visibility_line("in /api/signals, open window", &p.open_signals);
        out += &visibility_line("in /api/signals, closed", &p.signals);
    }
    out
}

fn visibility_line(what: &str, v: &Visibility) -> String {
    format!(
        "  {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} seen, {} missed)\n",
        v.p50_ms, v.p99_ms, v.max_ms, v.seen, v.missed
    )
}
