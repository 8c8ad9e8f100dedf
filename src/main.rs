//! The `faultline` command: argument parsing only; each job lives in `cli/`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use faultline::cli::{analyze, demo, experiment, export, loadgen, proxy, query, scenarios, serve};
use faultline::config;
use faultline::graph::NamingRule;
use faultline::scenarios::render::Format;
use faultline::scenarios::LlmSettings;

/// mimalloc rather than glibc's malloc: a span's few allocations cost less,
/// and freed memory goes back to the kernel on its own instead of staying
/// in glibc's arenas at the last burst's peak (see docs/performance.md, Soak).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// faultline finds the failures that live between services.
///
/// Point OpenTelemetry exporters at it (OTLP/gRPC on 4317, OTLP/HTTP on 4318)
/// and it builds a live interaction graph of your services, their databases,
/// queues and external peers: calls, error rates and latency percentiles per
/// node and per edge, in time windows. Or feed it exported span files with
/// `faultline analyze`.
#[derive(Parser)]
#[command(name = "faultline", version, about, long_about, max_term_width = 100)]
struct Cli {
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info`, `faultline=debug`).
    /// The FAULTLINE_LOG environment variable sets it too.
    #[arg(long, global = true, env = "FAULTLINE_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector: OTLP receivers, the live graph and the HTTP API.
    ///
    /// Without --config, the embedded default pipeline runs: OTLP/gRPC on
    /// 127.0.0.1:4317, OTLP/HTTP on 127.0.0.1:4318, the API on
    /// 127.0.0.1:8080 (`GET /api/graph`, `/api/graph.dot`, `/api/graph.mmd`,
    /// `/metrics`, `/healthz`). The environment variables
    /// FAULTLINE_GRPC_ENDPOINT, FAULTLINE_HTTP_ENDPOINT and
    /// FAULTLINE_API_ENDPOINT move them (port 0 picks a free port; the chosen
    /// addresses are printed on stdout). Stops on Ctrl-C or SIGTERM.
    Serve {
        /// A pipeline YAML file in the OpenTelemetry Collector's layout
        /// (receivers, processors, exporters, extensions, service.pipelines).
        /// `${env:VAR}` and `${env:VAR:-default}` are substituted; an
        /// unknown key is an error that names the key and the file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Build the graph offline from exported span files and print it.
    ///
    /// Reads OTLP JSON (one ExportTraceServiceRequest per file or per line,
    /// hex or base64 ids), Jaeger JSON (UI download or /api/traces) and
    /// Zipkin v2 JSON; the format of each file is detected. All pending
    /// pairs are expired at the end, so calls to uninstrumented peers show
    /// as virtual nodes. Prints a table, or with --format json the same
    /// document as `GET /api/graph` plus the list of files read.
    Analyze {
        /// Files to read.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// How virtual database and peer nodes are named: `tempo` (peer.service,
        /// server.address, network.peer.address, then db.*) or `collector`
        /// (db.name first, as the OpenTelemetry Collector's servicegraph).
        /// Overrides the pipeline's processors.graph.naming.
        #[arg(long, value_enum)]
        naming: Option<Naming>,
        /// Take graph settings (caps, naming) from this pipeline file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Generate failure scenarios from the graph and render them for a chaos tool.
    ///
    /// Reads the graph and its hotspot ranking, either from a running faultline
    /// (--server) or from exported span files (imported as `faultline analyze`
    /// does, then ranked offline), and proposes the faults worth injecting:
    /// latency (800 ms, and sized from the edge's own p99), jitter, a hung
    /// dependency, reset connections, packet loss, a bandwidth cap, a dependency
    /// down, a retry storm against a service with a store behind it, a slow
    /// consumer, reordered messages, cache degradation with fall-through to the
    /// database, and CPU pressure on a busy service. Each scenario carries its
    /// hypothesis (error rate at each boundary, p99 on the impacted path, retries,
    /// queue depth, time to recover), guardrails on the entry service, the signals
    /// to watch and the evidence behind it; `docs/scenarios.md` is the schema.
    /// The same input always gives the same scenarios, with the same ids.
    ///
    /// Renderers: `json` and `yaml` (the scenarios themselves), `toxiproxy`
    /// (populate.json plus one file of toxics per scenario), `chaos-mesh`
    /// (NetworkChaos/HTTPChaos/StressChaos per scenario and a Workflow running
    /// them in series under a StatusCheck), `litmus` (a ChaosEngine per scenario)
    /// and `chaostoolkit` (an experiment per scenario whose steady state probes
    /// faultline's /api/signals). Scenarios a tool cannot express are listed on
    /// stderr with the reason. Without --out, everything goes to stdout.
    ///
    /// With --llm-url and --llm-model, an OpenAI-compatible chat-completions
    /// endpoint is asked for more scenarios (API key from FAULTLINE_LLM_API_KEY);
    /// proposals naming unknown services, edges or fault kinds are rejected, and
    /// any failure of the call falls back to the rules alone. Plain http only:
    /// put an https endpoint behind a local proxy.
    Scenarios(ScenariosArgs),
    /// Run the fault proxy: TCP proxies you degrade on demand, driven by a
    /// Toxiproxy-compatible HTTP API.
    ///
    /// Toxiproxy 2.x clients and scripts work against it unchanged: same
    /// routes, bodies, defaults and status codes (tested with toxiproxy-python
    /// and the noxious-client crate). Create a proxy, send your traffic
    /// through its listen address, then add toxics:
    ///
    ///   curl -XPOST :8474/proxies \
    ///     -d '{"name":"db","listen":"127.0.0.1:15432","upstream":"127.0.0.1:5432"}'
    ///   curl -XPOST :8474/proxies/db/toxics \
    ///     -d '{"type":"latency","attributes":{"latency":200,"jitter":50}}'
    ///   curl -XPATCH :8474/proxies/db -d '{"enabled":false}'   # the database is down
    ///   curl -XPOST :8474/reset                 # every toxic gone, every proxy up
    ///
    /// Toxics (attributes; "stream" is upstream = client to server, or
    /// downstream = server to client, the default; "toxicity" is the share
    /// of connections a toxic applies to, default 1):
    ///   latency      latency, jitter (ms)
    ///   bandwidth    rate (KB/s)
    ///   slow_close   delay (ms) before a close is passed on
    ///   timeout      timeout (ms) then close; 0 holds the connection forever
    ///   reset_peer   timeout (ms) after the first bytes, then a TCP RST
    ///   slicer       average_size, size_variation (bytes), delay (µs)
    ///   limit_data   bytes, then close
    ///
    /// Beyond Toxiproxy:
    ///   --seed, or "seed" on a proxy: every random draw is reproducible.
    ///   latency "distribution": uniform (default, Toxiproxy's), normal,
    ///     lognormal or pareto, with latency as the mean and jitter as the
    ///     standard deviation.
    ///   the "http" toxic (delay_ms, abort_status, probability) delays or
    ///     answers single HTTP/1.x requests, not whole connections.
    /// See the README's "Fault proxy" section.
    ///
    /// Prints `faultline: faultproxy listening on <addr>` once the API is
    /// bound. Stops on Ctrl-C or SIGTERM, closing every proxy.
    #[command(verbatim_doc_comment)]
    Proxy {
        /// Address of the HTTP API (port 0 picks a free port).
        #[arg(long, env = "FAULTLINE_PROXY_LISTEN", default_value = faultline::faultproxy::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Proxies to create at start: a JSON array in the format of
        /// `POST /populate` (the same file as Toxiproxy's -config), e.g.
        /// [{"name":"db","listen":"127.0.0.1:15432","upstream":"127.0.0.1:5432"}].
        /// Unlike Toxiproxy, a bad file stops the start with an error.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Seed of every random draw (toxicity, jitter, slice sizes, HTTP
        /// probabilities). Without it a seed is drawn and logged at start.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// See faultline find hidden failures in a built-in shop, in minutes.
    ///
    /// Starts faultline (API and web page on --listen), a small shop of real
    /// services on loopback instrumented with the OpenTelemetry Rust SDK
    /// (gateway, orders, inventory with a cache and a store, payments with
    /// client retries, a notification queue whose consumer calls an email
    /// provider), every dependency connection routed through faultline's
    /// fault proxy, and steady traffic with bursts. After a warm-up it runs
    /// the loop: graph → hotspots → scenarios → experiments on the top
    /// scenarios → verdicts and times to recover → feedback → a second
    /// ranking that shows the changed priorities. Prints a report (also
    /// written to DATA_DIR/demo-report.json), then keeps the web page up
    /// until Ctrl-C, unless --no-ui.
    Demo {
        /// Cycles of the loop to run.
        #[arg(long, default_value_t = 1)]
        cycles: usize,
        /// Experiments per cycle: the top scenarios the fault proxy can run,
        /// interaction faults (retry storms, slow consumers, reordering,
        /// cache degradation) first, one per fault kind.
        #[arg(long, default_value_t = 3)]
        experiments: usize,
        /// Steady traffic before the first ranking.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        warm_up: Duration,
        /// How long each fault stays on.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        fault: Duration,
        /// Checkouts per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Address of the API and web page.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Data directory (feedback weights, experiment results, JSON lines).
        #[arg(long, default_value = "./faultline-demo")]
        data_dir: PathBuf,
        /// Exit after the report instead of keeping the web page up.
        #[arg(long)]
        no_ui: bool,
    },
    /// Send synthetic OTLP traces to a collector and report how it coped.
    ///
    /// Traces are trees of calls across services: each call is a CLIENT span in
    /// the caller and the SERVER span it parents in the callee, so the traffic
    /// pairs into a graph the way real traffic does. Requests are generated and
    /// encoded once, then re-sent with fresh trace ids and current times, so
    /// the load generator spends its CPU on sending, not encoding.
    ///
    /// At the end it prints the spans it sent per second, the latency of the
    /// export calls (p50, p99, max), and, with --metrics, how many spans the
    /// collector's `faultline_receiver_accepted_spans_total` grew by during the
    /// run: sent, accepted and unaccounted spans side by side.
    ///
    /// Examples:
    ///
    ///   faultline loadgen --duration 10s
    ///
    ///   faultline loadgen --protocol http --gzip --rate 100000 --concurrency 2
    ///
    ///   faultline loadgen --services 20 --depth 3 --fan-out 3 --attributes 20
    ///
    ///   faultline loadgen --rate 200000 --probes 60 --metrics http://127.0.0.1:8080/metrics
    ///
    /// Works against any OTLP trace receiver; --metrics and --probes only
    /// against faultline.
    Loadgen(Box<loadgen::LoadgenArgs>),
    /// Run fault experiments against a live system.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Ask your own questions of what faultline saw, in SQL.
    ///
    /// With the `parquet` exporter on (it is in the embedded default),
    /// faultline keeps every closed window's node, edge and path stats and
    /// every signal, anomaly, hotspot, scenario and experiment result as
    /// hourly Parquet files under DATA_DIR/history/. This runs a query over
    /// them with DataFusion: from the files directly (--data-dir, the
    /// default), through a running server (--server, which adds the window
    /// in progress as live_* tables), or over exported span files
    /// (--input, table `spans`). Latency histograms are kept in the HDR V2
    /// encoding, so `hdr_quantile(hdr_merge(latency_hist), 0.99)` is the
    /// exact p99 over any range of windows, not an average of percentiles.
    ///
    /// Examples:
    ///
    ///   faultline query "SELECT source, target, sum(calls) AS calls,
    ///       hdr_quantile(hdr_merge(latency_hist), 0.99) AS p99_ms
    ///     FROM edges GROUP BY source, target ORDER BY p99_ms DESC"
    ///
    ///   faultline query --input traces.json "SELECT service, count(*) FROM spans GROUP BY 1"
    ///
    /// A query DataFusion rejects prints its message on stderr and exits
    /// with status 1; so does one that writes (CREATE, INSERT, COPY), runs
    /// past --timeout or needs more than --memory-mib. Tables and columns:
    /// docs/history.md.
    #[command(verbatim_doc_comment)]
    Query(Box<query::QueryArgs>),
    /// Write the current graph and the history as Parquet, Arrow or CSV files.
    ///
    /// One file per table in --out (`edges.parquet`, `signals.csv`, …), from
    /// the same sources as `faultline query`: a data directory's history
    /// (default), a running server (--server: history, the graph since start
    /// as graph_nodes/graph_edges/graph_paths, and the live window), or
    /// exported span files (--input: spans, nodes, edges, paths). Prints each
    /// file with its row count.
    Export(Box<export::ExportArgs>),
}

#[derive(Subcommand)]
enum ExperimentCommand {
    /// Run experiment plans: baseline, inject, watch, remove, recover.
    ///
    /// For each plan (JSON or YAML, see docs/experiments.md): samples the
    /// target's signals from a running faultline for --baseline, refuses to
    /// start if the target has no traffic or is already out of tolerance,
    /// injects the plan's toxics through the Toxiproxy API at --proxy
    /// (faultline's own fault proxy or a real Toxiproxy), watches the five
    /// signals every tick and aborts early if a guardrail is crossed,
    /// removes the fault (always: at the end, on Ctrl-C or SIGTERM, on
    /// error; after a kill -9 the next run removes it from the journal in
    /// the data directory), then times recovery: until every watched signal
    /// is back within its baseline band for --recover-ticks windows.
    ///
    /// Prints one verdict per run. Each result is appended to
    /// DATA_DIR/experiments/results.jsonl and gets a JSON, JUnit XML and
    /// Markdown report in DATA_DIR/experiments/<run id>/. An unexpected
    /// verdict multiplies the feedback weight of the targets the plan
    /// watched by --feedback-factor, which the server's next ranking reads.
    Run {
        /// Plan files.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        /// The running faultline whose signals are watched.
        #[arg(
            long,
            default_value = "http://127.0.0.1:8080",
            env = "FAULTLINE_SERVER"
        )]
        server: String,
        /// The Toxiproxy API faults are injected through.
        #[arg(
            long,
            default_value = "http://127.0.0.1:8474",
            env = "FAULTLINE_PROXY_URL"
        )]
        proxy: String,
        /// How long the steady state is sampled before injecting.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        baseline: std::time::Duration,
        /// How often signals are sampled (the server's window length is the resolution).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        tick: std::time::Duration,
        /// Consecutive in-tolerance windows that count as recovered.
        #[arg(long, default_value_t = 3)]
        recover_ticks: usize,
        /// Give up waiting for recovery after this long.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        recover_limit: std::time::Duration,
        /// Run each plan this many times and report the spread of time to recover.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Journals, results and reports go here (share it with the server's
        /// data directory so the feedback weights reach its ranking).
        #[arg(long, default_value = "./faultline-data", env = "FAULTLINE_DATA_DIR")]
        data_dir: PathBuf,
        /// Multiplier on the feedback weight of targets an unexpected run touched.
        #[arg(long, default_value_t = 1.5)]
        feedback_factor: f64,
        /// Also write all runs' verdicts as one JUnit XML file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Exit with status 1 when any verdict is unexpected (for CI).
        #[arg(long)]
        fail_on_unexpected: bool,
    },
}

#[derive(Args)]
struct ScenariosArgs {
    /// Exported span files (OTLP JSON, Jaeger JSON, Zipkin v2 JSON), as for
    /// `faultline analyze`.
    #[arg(required_unless_present = "server", conflicts_with = "server")]
    files: Vec<PathBuf>,
    /// A running faultline's API, e.g. http://127.0.0.1:8080: reads
    /// /api/graph and /api/hotspots instead of importing files.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Keep the N highest-priority scenarios (default 20, or max_scenarios
    /// from --settings).
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Render::Json)]
    render: Render,
    /// Write the files under this directory (created if needed) instead of
    /// printing them: e.g. chaos-mesh/<id>.yaml and chaos-mesh/workflow.yaml.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Base URL of an OpenAI-compatible API (http://127.0.0.1:11434, .../v1,
    /// or the full .../v1/chat/completions) to ask for more scenarios.
    #[arg(long, value_name = "URL", env = "FAULTLINE_LLM_URL")]
    llm_url: Option<String>,
    /// The model to ask, e.g. llama3.1 or gpt-4o-mini.
    #[arg(long, value_name = "MODEL", env = "FAULTLINE_LLM_MODEL")]
    llm_model: Option<String>,
    /// Give up on the LLM after this long and use the rules alone (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    llm_timeout: Option<Duration>,
    /// How many scenarios to ask the LLM for (default 5).
    #[arg(long, value_name = "N")]
    llm_scenarios: Option<usize>,
    /// Scenario settings, a YAML file shaped like `processors.scenarios`
    /// (Kubernetes label key and namespace, Toxiproxy ports and upstreams,
    /// fault sizes, guardrails, llm); see docs/scenarios.md.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Take graph settings (caps, naming) for the file import from this
    /// pipeline file.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Render {
    Json,
    Yaml,
    Toxiproxy,
    ChaosMesh,
    Litmus,
    #[value(name = "chaostoolkit")]
    ChaosToolkit,
}

impl From<Render> for Format {
    fn from(r: Render) -> Format {
        match r {
            Render::Json => Format::Json,
            Render::Yaml => Format::Yaml,
            Render::Toxiproxy => Format::Toxiproxy,
            Render::ChaosMesh => Format::ChaosMesh,
            Render::Litmus => Format::Litmus,
            Render::ChaosToolkit => Format::ChaosToolkit,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Naming {
    Tempo,
    Collector,
}

fn main() -> ExitCode {
    faultline::memory_limiter::tune_allocator();
    let cli = Cli::parse();
    init_logging(&cli.log);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            let config = config::load(config.as_deref())?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve::run(config))
        }
        Command::Proxy {
            listen,
            config,
            seed,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(proxy::run(listen, config.as_deref(), seed))
        }
        Command::Analyze {
            files,
            format,
            naming,
            config,
        } => {
            let config = config::load(config.as_deref())?;
            let mut settings = config.processors.graph.settings();
            if let Some(n) = naming {
                settings.naming = match n {
                    Naming::Tempo => NamingRule::Tempo,
                    Naming::Collector => NamingRule::Collector,
                };
            }
            let analysis = analyze::analyze(&files, settings)?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&analysis)?),
                OutputFormat::Table => print!("{}", analyze::render_table(&analysis)),
            }
            Ok(())
        }
        Command::Demo {
            cycles,
            experiments,
            warm_up,
            fault,
            rate,
            listen,
            data_dir,
            no_ui,
        } => {
            let settings = faultline::demo::cycle::DemoSettings {
                api: listen,
                data_dir,
                cycles,
                experiments,
                warm_up,
                fault,
                rate,
                ..Default::default()
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(demo::run(settings, !no_ui))?;
            Ok(())
        }
        Command::Experiment(ExperimentCommand::Run {
            plans,
            server,
            proxy,
            baseline,
            tick,
            recover_ticks,
            recover_limit,
            repeat,
            data_dir,
            feedback_factor,
            junit,
            fail_on_unexpected,
        }) => {
            let args = experiment::RunArgs {
                plans,
                server,
                settings: faultline::experiments::RunSettings {
                    proxy_url: proxy,
                    baseline,
                    tick,
                    recover_ticks,
                    recover_limit,
                    feedback_factor,
                    data_dir: data_dir.clone(),
                },
                repeat,
                feedback_file: data_dir.join("feedback.json"),
                junit,
            };
            let runtime = tokio::runtime::Runtime::new()?;
            let results = runtime.block_on(experiment::run(args))?;
            let unexpected = results
                .iter()
                .any(|r| r.verdict == faultline::experiments::Verdict::Unexpected);
            if fail_on_unexpected && unexpected {
                anyhow::bail!("at least one experiment had an unexpected verdict");
            }
            Ok(())
        }
        Command::Scenarios(args) => run_scenarios(args),
        Command::Loadgen(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(loadgen::run(*args))
        }
        Command::Query(args) => {
            let settings = config::load(None)?.processors.graph.settings();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(query::run(*args, settings))
        }
        Command::Export(args) => {
            let settings = config::load(None)?.processors.graph.settings();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(export::run(*args, settings))
        }
    }
}

fn run_scenarios(args: ScenariosArgs) -> anyhow::Result<()> {
    let mut settings = scenarios::load_settings(args.settings.as_deref())?;
    if let Some(n) = args.top {
        settings.max_scenarios = n;
    }
    if let Some(url) = args.llm_url {
        let llm = settings.llm.get_or_insert_with(LlmSettings::default);
        llm.url = url;
    }
    if let Some(llm) = settings.llm.as_mut() {
        if let Some(model) = args.llm_model {
            llm.model = model;
        }
        if let Some(t) = args.llm_timeout {
            llm.timeout = t;
        }
        if let Some(n) = args.llm_scenarios {
            llm.scenarios = n;
        }
        anyhow::ensure!(
            !llm.model.is_empty(),
            "--llm-url needs --llm-model (or llm.model in --settings)"
        );
    }
    let graph = config::load(args.config.as_deref())?
        .processors
        .graph
        .settings();
    let input = match args.server {
        Some(url) => scenarios::Input::Server(url),
        None => scenarios::Input::Files(args.files),
    };
    let options = scenarios::Options {
        input,
        format: args.render.into(),
        out: args.out,
        settings,
        graph,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(scenarios::run(options))?;
    print!("{}", outcome.stdout);
    eprintln!("faultline: {}", outcome.summary);
    Ok(())
}
