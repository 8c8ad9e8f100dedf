//! One proxied connection: dials the upstream, runs a pump per direction and
//! tears both sockets down together, with a TCP RST when a toxic asks.

use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::chain::CloseKind;
use super::pump::{read_source, Pump, PumpEnd};
use super::rng::derive;
use super::state::Chains;
use super::toxics::Direction;

/// What a connection needs from its proxy.
pub struct LinkContext {
    pub proxy: Arc<str>,
    pub upstream: String,
    pub seed: u64,
    pub chains: watch::Receiver<Arc<Chains>>,
    /// The connection's number on its proxy, counted from 0: with the seed
    /// it fixes every random draw on the connection.
    pub number: u64,
}

impl LinkContext {
    fn link_seed(&self, direction: Direction) -> u64 {
        derive(
            self.seed,
            &[
                self.proxy.as_bytes(),
                &self.number.to_le_bytes(),
                direction.as_str().as_bytes(),
            ],
        )
    }
}

/// Serves one accepted client until the connection ends.
pub async fn serve(client: TcpStream, ctx: LinkContext) {
    let upstream = match TcpStream::connect(&ctx.upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(proxy = %ctx.proxy, upstream = %ctx.upstream, error = %e,
                "faultproxy: cannot reach the upstream; closing the client");
            return;
        }
    };
    // Go sets TCP_NODELAY on every connection; without it slices and delays blur.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client, upstream) = (Arc::new(client), Arc::new(upstream));
    let mut tasks = spawn_links(&client, &upstream, &ctx);
    let end = wait_for_end(&mut tasks).await;
    tracing::debug!(proxy = %ctx.proxy, connection = ctx.number, ?end, "faultproxy: connection ends");
    if end == CloseKind::Reset {
        for s in [&client, &upstream] {
            let _ = SockRef::from(&**s).set_linger(Some(Duration::ZERO));
        }
    }
    tasks.shutdown().await; // every task's socket handle is dropped: the sockets close
}

fn spawn_links(
    client: &Arc<TcpStream>,
    upstream: &Arc<TcpStream>,
    ctx: &LinkContext,
) -> JoinSet<Option<PumpEnd>> {
    let mut tasks = JoinSet::new();
    let (up_tx, up_rx) = mpsc::channel(16);
    let (down_tx, down_rx) = mpsc::channel(16);
    let (reply_tx, reply_rx) = mpsc::channel(16);
    let (c, u) = (client.clone(), upstream.clone());
    tasks.spawn(async move {
        read_source(c, up_tx).await;
        None
    });
    tasks.spawn(async move {
        read_source(u, down_tx).await;
        None
    });
    let up = Pump {
        direction: Direction::Upstream,
        dest: upstream.clone(),
        input: up_rx,
        chains: ctx.chains.clone(),
        replies_out: Some(reply_tx),
        replies_in: None,
        link_seed: ctx.link_seed(Direction::Upstream),
    };
    let down = Pump {
        direction: Direction::Downstream,
        dest: client.clone(),
        input: down_rx,
        chains: ctx.chains.clone(),
        replies_out: None,
        replies_in: Some(reply_rx),
        link_seed: ctx.link_seed(Direction::Downstream),
    };
    tasks.spawn(async move { Some(up.run().await) });
    tasks.spawn(async move { Some(down.run().await) });
    tasks
}

/// Until both directions are closed, or one asks to tear the connection down.
async fn wait_for_end(tasks: &mut JoinSet<Option<PumpEnd>>) -> CloseKind {
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some(PumpEnd::Close(kind))) => return kind,
            Ok(Some(PumpEnd::Done)) => {
                done += 1;
                if done == 2 {
                    break;
                }
            }
            Ok(None) => {}
            Err(_) => break, // a panicked pump: close the connection
        }
    }
    CloseKind::Graceful
}
