//! A running proxy: its listener and the connections it accepted. Stopping
//! it (disable, delete, a new listen or upstream address) closes both, as
//! Toxiproxy does, and waits until the port is free again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::connection::{self, LinkContext};
use super::error::ApiError;
use super::state::Chains;

/// What every connection of a proxy shares.
#[derive(Clone)]
pub struct ProxyContext {
    pub name: Arc<str>,
    pub upstream: String,
    /// The proxy's effective seed; an update changes it for new connections.
    pub seed: Arc<AtomicU64>,
    pub chains: watch::Receiver<Arc<Chains>>,
    pub connections: Arc<AtomicU64>,
}

impl ProxyContext {
    fn link(&self) -> LinkContext {
        LinkContext {
            proxy: self.name.clone(),
            upstream: self.upstream.clone(),
            seed: self.seed.load(Ordering::Relaxed),
            chains: self.chains.clone(),
            number: self.connections.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// A bound, accepting proxy.
pub struct Listening {
    pub addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Listening {
    pub async fn bind(listen: &str, ctx: ProxyContext) -> Result<Listening, ApiError> {
        let listener = bind_listener(listen).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| ApiError::Internal(format!("listen tcp {listen}: {e}")))?;
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(listener, ctx));
        Ok(Listening { addr, tasks })
    }

    /// Closes the listener and every connection, and waits for the listener.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

/// Binds like Go's `net.Listen("tcp", listen)`: an empty host (`:8080`, or
/// nothing at all) means every interface.
async fn bind_listener(listen: &str) -> Result<TcpListener, ApiError> {
    let target = match listen {
        "" => "[::]:0".to_string(),
        l if l.starts_with(':') => format!("[::]{l}"),
        l => l.to_string(),
    };
    let mut result = TcpListener::bind(&target).await;
    if result.is_err() && target.starts_with("[::]") {
        result = TcpListener::bind(target.replacen("[::]", "0.0.0.0", 1)).await;
    }
    result.map_err(|e| ApiError::Internal(format!("listen tcp {listen}: {e}")))
}

/// Accepts until stopped; the connections live in a set dropped (and so
/// aborted) with this task.
async fn accept_loop(listener: TcpListener, ctx: ProxyContext) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    tracing::debug!(proxy = %ctx.name, %peer, "faultproxy: accepted a client");
                    connections.spawn(connection::serve(client, ctx.link()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(proxy = %ctx.name, error = %e, "faultproxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Go's `net.ResolveTCPAddr(...).String()`, used to tell whether a new
/// `listen` differs from the bound address (so a hostname that resolves to
/// the same address does not restart the proxy).
pub async fn resolve(listen: &str) -> Result<String, ApiError> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr.to_string());
    }
    if listen.is_empty() || listen.starts_with(':') {
        return Ok(listen.to_string());
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| ApiError::Internal(format!("address {listen}: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.to_string())
        .ok_or_else(|| ApiError::Internal(format!("address {listen}: no such host")))
}
