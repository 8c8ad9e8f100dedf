//! `faultline proxy`: the fault proxy on its own, a drop-in for a Toxiproxy
//! server.

use std::net::SocketAddr;
use std::path::Path;

use crate::faultproxy;

/// Entry point of `faultline proxy`: serves until Ctrl-C or SIGTERM.
pub async fn run(
    listen: SocketAddr,
    config: Option<&Path>,
    seed: Option<u64>,
) -> anyhow::Result<()> {
    let running = faultproxy::start(listen, seed).await?;
    if let Some(path) = config {
        let created = running.populate_file(path).await?;
        tracing::info!(proxies = created, file = %path.display(), "faultproxy: proxies loaded");
    }
    // One line on stdout, so scripts can find a port chosen by `:0`.
    println!("faultline: faultproxy listening on {}", running.addr());
    tracing::info!(
        seed = running.seed(),
        "faultproxy: replay this run with --seed"
    );
    super::serve::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await
}
