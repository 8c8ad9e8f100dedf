//! `faultline serve`: the live collector.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, ApiState};
use crate::config::PipelineConfig;
use crate::experiments::service::Service;
use crate::exporters::{jsonl::JsonlExporter, Exporter};
use crate::graph::Graph;
use crate::memory_limiter::{MemoryLimiter, MemoryProbe, ProcessRss};
use crate::operators::{Feedback, Live, Operators, SharedLatest};
use crate::query::{ParquetExporter, QueryService};
use crate::receivers::{otlp_grpc, otlp_http, SpanSink};
use crate::telemetry::Telemetry;

/// A started collector: its bound addresses and a way to stop it.
pub struct Running {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
    pub graph: Graph,
    pub telemetry: Arc<Telemetry>,
    pub latest: SharedLatest,
    /// The memory limiter, if the pipeline has one.
    pub memory_limiter: Option<Arc<MemoryLimiter>>,
    /// The embedded fault proxy's API address, if it is on.
    pub faultproxy: Option<SocketAddr>,
    /// Where the JSON lines exporter writes, if it is on.
    pub jsonl_dir: Option<std::path::PathBuf>,
    /// The Parquet history writer, if it is on.
    pub history: Option<Arc<ParquetExporter>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
    proxy: Option<crate::faultproxy::RunningProxy>,
}

/// Binds every listener first — so a port conflict fails at start, naming
/// the component — then serves in the background.
pub async fn start(config: &PipelineConfig) -> anyhow::Result<Running> {
    start_with_probe(config, Arc::new(ProcessRss)).await
}

/// [`start`], with the memory limiter measuring through `probe` instead of
/// the process's RSS (tests decide what it reads).
pub async fn start_with_probe(
    config: &PipelineConfig,
    probe: Arc<dyn MemoryProbe>,
) -> anyhow::Result<Running> {
    let graph_cfg = &config.processors.graph;
    let graph = Graph::start(graph_cfg.settings());
    let telemetry = Arc::new(Telemetry::new());
    let limiter = match config.memory_limiter() {
        Some(c) => Some(Arc::new(
            MemoryLimiter::new(c, probe, telemetry.clone())
                .context("starting the memory limiter (processors.memory_limiter)")?,
        )),
        None => None,
    };
    let sink = SpanSink {
        graph: graph.clone(),
        telemetry: telemetry.clone(),
        limiter: limiter.clone(),
    };
    let (stop, stopped) = watch::channel(false);
    let shutdown = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let proxy = match config.faultproxy() {
        Some(p) => Some(
            crate::faultproxy::start(p.endpoint, p.seed)
                .await
                .context("starting the fault proxy (extensions.faultproxy)")?,
        ),
        None => None,
    };
    let history = match config.parquet_exporter() {
        Some(c) => Some(Arc::new(
            ParquetExporter::start(c, telemetry.clone())
                .context("starting the history writer (exporters.parquet)")?,
        )),
        None => None,
    };
    let mut exporters = start_exporters(config, &telemetry)?;
    if let Some(h) = &history {
        exporters.push(h.clone());
    }
    let live = start_operators(config, &graph, exporters.clone())?;
    let latest = live.latest();
    let experiments = start_experiments(config, &latest, exporters, stop.subscribe()).await?;
    let mut tasks = JoinSet::new();
    if let Some(l) = &limiter {
        // Measured once before the first request, then on its interval.
        l.check();
        let checking = l.clone().run(shutdown());
        tasks.spawn(async move {
            checking.await;
            Ok(())
        });
    }
    let mut bound = (None, None, None);
    let otlp = config.receivers.otlp.as_ref().map(|o| &o.protocols);
    if let Some(addr) = config.grpc_endpoint() {
        let listener = bind(addr, "OTLP/gRPC receiver").await?;
        bound.0 = Some(listener.local_addr()?);
        let grpc = otlp.and_then(|p| p.grpc.as_ref());
        let max = grpc.map_or(16, |g| g.max_recv_msg_size_mib) << 20;
        let decoder = grpc.map(|g| g.decoder).unwrap_or_default();
        let serving = otlp_grpc::serve(listener, sink.clone(), max, decoder, shutdown());
        tasks.spawn(serving);
    }
    if let Some(addr) = config.http_endpoint() {
        let listener = bind(addr, "OTLP/HTTP receiver").await?;
        bound.1 = Some(listener.local_addr()?);
        let http = otlp.and_then(|p| p.http.as_ref());
        let max = http.map_or(16, |h| h.max_request_body_size_mib) << 20;
        let decoder = http.map(|h| h.decoder).unwrap_or_default();
        let serving = otlp_http::serve(listener, sink.clone(), max, decoder, shutdown());
        tasks.spawn(serving);
    }
    if let Some(addr) = config.api_endpoint() {
        let listener = bind(addr, "HTTP API").await?;
        bound.2 = Some(listener.local_addr()?);
        let state = ApiState {
            graph: graph.clone(),
            telemetry: telemetry.clone(),
            latest: latest.clone(),
            experiments: experiments.clone(),
            scenario_settings: Arc::new(config.processors.scenarios.clone()),
            query: QueryService {
                graph: graph.clone(),
                latest: latest.clone(),
                history: history.clone(),
                limits: config.query_limits(),
            },
        };
        // On a background thread: building views for dashboards and
        // probes must not take the core from the receivers.
        let (listener, stopped) = (listener.into_std()?, shutdown());
        tasks.spawn(crate::background::serve(
            "faultline-api",
            move || async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                api::serve(listener, state, stopped).await
            },
        ));
    }
    tasks.spawn(tick(graph.clone(), live, graph_cfg.tick, shutdown()));
    Ok(Running {
        grpc: bound.0,
        http: bound.1,
        api: bound.2,
        graph,
        telemetry,
        latest,
        memory_limiter: limiter,
        faultproxy: proxy.as_ref().map(|p| p.addr()),
        proxy,
        jsonl_dir: config.jsonl_exporter().map(|j| j.directory.clone()),
        history,
        stop,
        tasks,
    })
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the {what} (is another process using it? set another endpoint in the pipeline)"))
}

/// Starts the exporters the pipeline names.
fn start_exporters(
    config: &PipelineConfig,
    telemetry: &Arc<Telemetry>,
) -> anyhow::Result<Vec<Arc<dyn Exporter>>> {
    let mut exporters: Vec<Arc<dyn Exporter>> = Vec::new();
    if let Some(c) = config.jsonl_exporter() {
        exporters.push(Arc::new(JsonlExporter::start(c, telemetry.clone())?));
    }
    if let Some(c) = config.kafka_exporter() {
        let kafka = crate::exporters::kafka::KafkaExporter::start(c, telemetry.clone())
            .context("starting the Kafka exporter (exporters.kafka)")?;
        exporters.push(Arc::new(kafka));
    }
    Ok(exporters)
}

/// The operators, feeding the exporters.
fn start_operators(
    config: &PipelineConfig,
    graph: &Graph,
    exporters: Vec<Arc<dyn Exporter>>,
) -> anyhow::Result<Live> {
    let settings = config.processors.operators.clone();
    let feedback = Feedback::load(settings.feedback_file.as_deref())?;
    let live = Live::new(graph.clone(), Operators::new(settings, feedback), exporters);
    let uses = |p: &str| {
        let traces = &config.service.pipelines.traces;
        traces.processors.iter().any(|x| x == p)
    };
    Ok(if uses("scenarios") {
        live.with_scenarios(config.processors.scenarios.clone())
    } else {
        live
    })
}

/// The experiment service, after removing faults an interrupted run left.
async fn start_experiments(
    config: &PipelineConfig,
    latest: &SharedLatest,
    exporters: Vec<Arc<dyn Exporter>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<Arc<Service>>> {
    let Some(settings) = config.experiments() else {
        return Ok(None);
    };
    match crate::experiments::journal::clean_leftovers(&settings.data_dir).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(faults = n, "removed faults left by interrupted experiments"),
        Err(error) => {
            tracing::error!(%error, "cannot clean up faults left by interrupted experiments")
        }
    }
    let feedback = config.processors.operators.feedback_file.clone();
    Ok(Some(Arc::new(Service::new(
        settings,
        latest.clone(),
        feedback,
        exporters,
        stop,
    ))))
}

/// Closes windows, expires pending pairs and evaluates closed windows on a
/// fixed beat; flushes the exporters on the way out.
///
/// The beat falls on the wall clock's multiples of `every` (just after
/// them), as window boundaries do, so when `every` divides the window
/// length a window is evaluated as soon as it closes. An unaligned beat
/// (`tokio::time::interval` from start-up) waited up to one more `every`
/// after the close: with 1 s windows and ticks, a span's signals appeared
/// up to 2 s after it arrived instead of up to 1 s.
async fn tick(
    graph: Graph,
    mut live: Live,
    every: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(until_beat(crate::graph::now_ms(), every)) => {
                graph.tick().await;
                live = live.step().await?;
            }
            _ = &mut shutdown => break,
        }
    }
    tokio::task::spawn_blocking(move || live.flush(std::time::Duration::from_secs(5))).await?;
    Ok(())
}

/// Past a beat, how long to wait: the shard threads read the wall clock
/// again, and a window closes only once it reads past the boundary.
const BEAT_MARGIN_MS: u64 = 2;

/// How long from `now_ms` (ms since the epoch) to the next beat: the next
/// multiple of `every`, plus [`BEAT_MARGIN_MS`].
fn until_beat(now_ms: u64, every: std::time::Duration) -> std::time::Duration {
    let every_ms = (every.as_millis() as u64).max(1);
    let beat = (now_ms / every_ms + 1) * every_ms + BEAT_MARGIN_MS;
    std::time::Duration::from_millis(beat - now_ms)
}

impl Running {
    /// Stops every server gracefully and waits for them.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        while let Some(done) = self.tasks.join_next().await {
            done??;
        }
        if let Some(proxy) = self.proxy.take() {
            proxy.stop().await?;
        }
        Ok(())
    }

    /// Waits until a server fails, or Ctrl-C / SIGTERM, then stops.
    pub async fn run_until_signal(mut self) -> anyhow::Result<()> {
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutting down"),
            Some(done) = self.tasks.join_next() => {
                done??;
                anyhow::bail!("a server stopped unexpectedly");
            }
        }
        self.stop().await
    }
}

pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Entry point of `faultline serve`.
pub async fn run(config: PipelineConfig) -> anyhow::Result<()> {
    let running = start(&config).await?;
    for (what, addr) in [
        ("otlp_grpc", running.grpc),
        ("otlp_http", running.http),
        ("api", running.api),
        ("faultproxy", running.faultproxy),
    ] {
        if let Some(addr) = addr {
            // One line per listener on stdout, so scripts can find ports chosen by `:0`.
            println!("faultline: {what} listening on {addr}");
        }
    }
    running.run_until_signal().await
}

#[cfg(test)]
mod tests {
    use super::until_beat;
    use std::time::Duration;

    #[test]
    fn the_beat_falls_just_after_the_clock_multiples() {
        let second = Duration::from_secs(1);
        assert_eq!(
            until_beat(1_700_000_000_500, second),
            Duration::from_millis(502)
        );
        // On a boundary (a beat just ran): the next one, not this one again.
        assert_eq!(
            until_beat(1_700_000_000_000, second),
            Duration::from_millis(1_002)
        );
        assert_eq!(
            until_beat(1_700_000_000_001, second),
            Duration::from_millis(1_001)
        );
        let tenth = Duration::from_millis(100);
        assert_eq!(
            until_beat(1_700_000_000_050, tenth),
            Duration::from_millis(52)
        );
        assert_eq!(until_beat(5, Duration::ZERO), Duration::from_millis(3));
    }
}
