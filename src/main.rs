//! The `faultline` command: argument parsing only; each job lives in `cli/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use faultline::cli::{analyze, proxy, serve};
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
    }
}
