//! The `faultline` command: argument parsing only; each job lives in `cli/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use faultline::cli::{analyze, loadgen, serve};
use faultline::config;
use faultline::graph::NamingRule;

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
    /// Works against any OTLP trace receiver; --metrics only against faultline.
    Loadgen(Box<loadgen::LoadgenArgs>),
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
        Command::Loadgen(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(loadgen::run(*args))
        }
    }
}
