//! The fault proxy: TCP proxies whose traffic can be degraded on demand,
//! driven by an HTTP API compatible with Toxiproxy 2.x, so existing
//! Toxiproxy clients, scripts and chaos tools work against it unchanged.
//!
//! A client connects to a proxy's `listen` address; the proxy dials its
//! `upstream` and copies bytes both ways through the *toxics* of each
//! direction (`upstream`: client to server, `downstream`: server to
//! client). [`start`] runs the API and returns a handle, so `faultline
//! serve` and the experiment runner can embed it; `faultline proxy` runs it
//! alone.
//!
//! Beyond Toxiproxy, without changing anything a Toxiproxy client sees: a
//! seed (server-wide, or `seed` on a proxy) that makes every random draw
//! reproducible; a `distribution` attribute on `latency`; and an `http`
//! toxic that delays or aborts individual HTTP/1.x requests with a
//! probability.

mod api;
mod chain;
mod connection;
pub mod error;
mod http1;
mod json;
mod listener;
mod pump;
mod rng;
mod state;
pub mod toxics;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api::VERSION;
pub use error::{ApiError, StartError};
use state::Registry;

/// The API's default address, as Toxiproxy's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8474";

/// A running fault proxy server. [`stop`](Self::stop) shuts it down and
/// waits; dropping it also shuts the API and every proxy down, without
/// waiting.
pub struct RunningProxy {
    addr: SocketAddr,
    registry: Arc<Registry>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Binds the API on `addr` (port 0 picks a free port) and serves it in the
/// background. Without a `seed` one is drawn and logged, so a run can be
/// replayed with `--seed`.
pub async fn start(addr: SocketAddr, seed: Option<u64>) -> anyhow::Result<RunningProxy> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let addr = listener.local_addr()?;
    let seed = seed.unwrap_or_else(rng::random_seed);
    tracing::info!(%addr, seed, "faultproxy: API listening");
    let registry = Arc::new(Registry::new(seed));
    let (stop, stopped) = oneshot::channel();
    let app = api::router(registry.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningProxy {
        addr,
        registry,
        stop,
        server,
    })
}

impl RunningProxy {
    /// The API's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8474`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The seed in force for proxies that set none.
    pub fn seed(&self) -> u64 {
        self.registry.seed()
    }

    /// Creates the proxies of a JSON array in `/populate`'s format (what
    /// Toxiproxy's `-config` file holds); returns how many there are.
    pub async fn populate(&self, json: &[u8]) -> Result<usize, ApiError> {
        match self.registry.populate(json).await {
            (_, Some(e)) => Err(e),
            (proxies, None) => Ok(proxies.map_or(0, |p| p.len())),
        }
    }

    /// [`populate`](Self::populate) from a file.
    pub async fn populate_file(&self, path: &Path) -> Result<usize, StartError> {
        let text = tokio::fs::read(path)
            .await
            .map_err(|source| StartError::ReadConfig {
                path: path.to_owned(),
                source,
            })?;
        self.populate(&text)
            .await
            .map_err(|source| StartError::Populate {
                path: path.to_owned(),
                source,
            })
    }

    /// Stops the API and every proxy, closing their connections.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.registry.stop_all().await;
        self.server
            .await
            .context("the fault proxy API task failed")?
            .context("the fault proxy API failed")
    }
}
