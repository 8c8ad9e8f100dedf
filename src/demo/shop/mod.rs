//! Starting, rewiring and stopping the shop (see [`crate::demo`] for what it
//! is and what it hides).

mod client;
mod config;
mod front;
mod inventory;
mod leaf;
mod queue;
mod stats;
mod telemetry;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use config::{Dependency, ShopConfig, ShopError};
pub use stats::ShopStats;

use client::Svc;
use config::Routes;
use queue::Queue;
use stats::Counters;
use telemetry::{provider, Instr};

/// The instrumented services, each with its own tracer provider.
pub const SERVICES: [&str; 6] = [
    "gateway",
    "orders",
    "inventory",
    "payments",
    "notifier",
    "email-provider",
];
/// The queue's `messaging.destination.name`.
pub const DESTINATION: &str = "notifications";
/// The queue's `messaging.system`.
pub const MESSAGING_SYSTEM: &str = "memq";

/// How long [`RunningShop::stop`] lets servers finish in-flight requests.
const GRACE: Duration = Duration::from_secs(5);

/// The shop, running. Dropping it stops everything too (and shuts the
/// tracer providers down off the async workers), but only
/// [`stop`](RunningShop::stop) waits until every span is exported.
pub struct RunningShop {
    /// Where traffic enters: `POST /checkout` with `{customer, sku, qty}`.
    pub gateway: SocketAddr,
    upstreams: BTreeMap<Dependency, SocketAddr>,
    routes: Routes,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    providers: Vec<(&'static str, SdkTracerProvider)>,
}

/// Starts the shop on loopback, exporting spans over OTLP/gRPC to
/// `otlp_endpoint` (e.g. `http://127.0.0.1:4317`). Must run inside a
/// multi-threaded Tokio runtime.
pub async fn start(cfg: ShopConfig, otlp_endpoint: &str) -> anyhow::Result<RunningShop> {
    cfg.validate()?;
    let listeners = Listeners::bind().await?;
    let upstreams = listeners.upstreams()?;
    let routes = Routes::new(&upstreams, &cfg.via);
    let cfg = Arc::new(cfg);
    let counters = Arc::new(Counters::default());
    let mut providers = Vec::new();
    let mut svc = |service: &'static str| -> anyhow::Result<Svc> {
        let p = provider(service, otlp_endpoint, cfg.export_delay)?;
        let instr = Instr::new(&p);
        providers.push((service, p));
        Svc::new(instr, routes.clone(), cfg.clone(), counters.clone())
    };
    let services = Services {
        gateway: svc("gateway")?,
        orders: svc("orders")?,
        inventory: svc("inventory")?,
        payments: svc("payments")?,
        notifier: svc("notifier")?,
        email: svc("email-provider")?,
    };
    let gateway = listeners.gateway.local_addr()?;
    let (stop, _) = watch::channel(false);
    let queue = Arc::new(Queue::default());
    let mut tasks = JoinSet::new();
    listeners.serve(services, &cfg, &queue, &stop, &mut tasks);
    Ok(RunningShop {
        gateway,
        upstreams,
        routes,
        queue,
        counters,
        stop,
        tasks,
        providers,
    })
}

struct Services {
    gateway: Svc,
    orders: Svc,
    inventory: Svc,
    payments: Svc,
    notifier: Svc,
    email: Svc,
}

/// One listener per server, bound before anything runs.
struct Listeners {
    gateway: TcpListener,
    orders: TcpListener,
    inventory: TcpListener,
    payments: TcpListener,
    cache: TcpListener,
    store: TcpListener,
    email: TcpListener,
}

impl Listeners {
    async fn bind() -> anyhow::Result<Listeners> {
        Ok(Listeners {
            gateway: bind("gateway").await?,
            orders: bind("orders").await?,
            inventory: bind("inventory").await?,
            payments: bind("payments").await?,
            cache: bind("inventory-cache").await?,
            store: bind("inventory-db").await?,
            email: bind("email-provider").await?,
        })
    }

    fn upstreams(&self) -> anyhow::Result<BTreeMap<Dependency, SocketAddr>> {
        Ok(BTreeMap::from([
            (Dependency::Orders, self.orders.local_addr()?),
            (Dependency::Inventory, self.inventory.local_addr()?),
            (Dependency::Payments, self.payments.local_addr()?),
            (Dependency::InventoryCache, self.cache.local_addr()?),
            (Dependency::InventoryDb, self.store.local_addr()?),
            (Dependency::EmailProvider, self.email.local_addr()?),
        ]))
    }

    fn serve(
        self,
        s: Services,
        cfg: &ShopConfig,
        queue: &Arc<Queue>,
        stop: &watch::Sender<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        let servers = [
            (self.gateway, front::gateway(s.gateway)),
            (self.orders, front::orders(s.orders, queue.clone())),
            (self.inventory, inventory::inventory(s.inventory)),
            (self.payments, leaf::payments(s.payments)),
            (self.cache, inventory::cache()),
            (self.store, inventory::store_service(cfg.initial_stock)),
            (self.email, leaf::email_provider(s.email)),
        ];
        for (listener, router) in servers {
            tasks.spawn(serve(listener, router, stop.subscribe()));
        }
        tasks.spawn(queue::notifier(s.notifier, queue.clone(), stop.subscribe()));
    }
}

async fn bind(what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .with_context(|| format!("binding a loopback port for the demo's {what}"))
}

async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!("demo shop server stopped: {e}");
    }
}

impl RunningShop {
    /// `http://<gateway>`.
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway)
    }

    /// The real address of a dependency (a proxy's upstream).
    pub fn upstream(&self, dep: Dependency) -> SocketAddr {
        self.upstreams[&dep]
    }

    /// Every dependency with its real address.
    pub fn upstreams(&self) -> Vec<(Dependency, SocketAddr)> {
        self.upstreams.iter().map(|(d, a)| (*d, *a)).collect()
    }

    /// The address the caller of `dep` currently sends to.
    pub fn route(&self, dep: Dependency) -> SocketAddr {
        self.routes.addr(dep)
    }

    /// Sends `dep`'s traffic to `addr` from now on (a proxy listener, or
    /// [`upstream`](Self::upstream) to go direct again). Calls in flight
    /// finish where they started; pooled connections to the old address
    /// are simply no longer used.
    pub fn reroute(&self, dep: Dependency, addr: SocketAddr) {
        self.routes.set(dep, addr);
    }

    /// A Toxiproxy `POST /populate` body: one proxy per dependency, named
    /// after it, listening on `127.0.0.1:0`, upstream its real address.
    pub fn toxiproxy_populate(&self) -> serde_json::Value {
        self.upstreams
            .iter()
            .map(|(d, addr)| {
                serde_json::json!({
                    "name": d.name(),
                    "listen": "127.0.0.1:0",
                    "upstream": addr.to_string(),
                    "enabled": true,
                })
            })
            .collect()
    }

    pub fn stats(&self) -> ShopStats {
        self.counters.snapshot()
    }

    /// Messages waiting in `notifications` right now.
    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Waits until every published message was delivered or dropped; false
    /// if that did not happen within `timeout`.
    pub async fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.stats().pending_messages() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Stops the notifier and the servers (letting in-flight requests
    /// finish, at most 5 s), then flushes and shuts down every tracer
    /// provider, so all spans ended so far reach faultline.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        let mut tasks = std::mem::take(&mut self.tasks);
        let drained =
            tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        let providers = std::mem::take(&mut self.providers);
        tokio::task::spawn_blocking(move || flush_all(providers))
            .await
            .context("flushing the demo's tracer providers")?
    }
}

/// Flushes, then shuts down, every provider; reports every failure.
fn flush_all(providers: Vec<(&'static str, SdkTracerProvider)>) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for (service, p) in &providers {
        if let Err(e) = p.force_flush() {
            failures.push(format!("{service}: flush: {e}"));
        }
    }
    for (service, p) in &providers {
        if let Err(e) = p.shutdown() {
            failures.push(format!("{service}: shutdown: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("exporting the demo's spans: {}", failures.join("; "))
    }
}

impl Drop for RunningShop {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.tasks.abort_all();
        let providers = std::mem::take(&mut self.providers);
        if providers.is_empty() {
            return;
        }
        // Shutting a provider down blocks on its export thread, which needs
        // the runtime's gRPC worker: never do it on an async worker.
        let flush = move || {
            if let Err(e) = flush_all(providers) {
                tracing::warn!("demo shop dropped: {e:#}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(flush)),
            Err(_) => flush(),
        }
    }
}
