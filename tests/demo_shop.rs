//! The demo shop end to end: real services on loopback, instrumented with
//! the OpenTelemetry Rust SDK, exporting OTLP/gRPC to a running faultline.
//!
//! The first test checks that faultline's graph is the shop's architecture
//! and that every confirmation is accounted for; the other two turn one
//! knob each and check that the hidden failures the demo documents really
//! happen and really show in faultline's signals.

use crate::common;

use std::time::{Duration, Instant};

use common::{get_json, node, serve_with};
use faultline::cli::serve::Running;
use faultline::demo::{
    self, Dependency, RunningShop, ShopConfig, TrafficConfig, TrafficReport, DESTINATION,
};
use serde_json::Value;

/// The shop's edges: (source, target, kind).
const EDGES: [(&str, &str, &str); 7] = [
    ("gateway", "orders", "rpc"),
    ("orders", "inventory", "rpc"),
    ("orders", "payments", "rpc"),
    ("inventory", "inventory-cache", "database"),
    ("inventory", "inventory-db", "database"),
    ("orders", "notifier", "messaging"),
    ("notifier", "email-provider", "rpc"),
];

/// faultline with windows closing every second and a pairing TTL long
/// enough for confirmations that wait in a backed-up queue.
async fn faultline() -> Running {
    serve_with(&[("tick: 100ms", "tick: 1s"), ("ttl: 1s", "ttl: 30s")]).await
}

/// A timeout no call of a healthy shop reaches, even on a busy 2-core
/// machine running debug builds.
const PATIENT: Duration = Duration::from_secs(3);

/// `cfg` with timeouts only a real fault would hit, so the healthy shop
/// has no failures of its own.
fn patient(cfg: ShopConfig) -> ShopConfig {
    ShopConfig {
        payments_timeout: PATIENT,
        email_timeout: PATIENT,
        ..cfg
    }
}

async fn shop(fl: &Running, cfg: ShopConfig) -> RunningShop {
    let endpoint = format!("http://{}", fl.grpc.expect("gRPC receiver bound"));
    demo::start(cfg, &endpoint).await.expect("the shop starts")
}

async fn traffic(shop: &RunningShop, cfg: TrafficConfig) -> TrafficReport {
    demo::drive(shop.gateway, &cfg).await.expect("traffic runs")
}

fn destination(graph: &Value) -> Option<&Value> {
    graph["destinations"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == DESTINATION)
}

/// `field` of the `notifications` destination, 0 when absent.
fn dest_u64(graph: &Value, field: &str) -> u64 {
    destination(graph).map_or(0, |d| d[field].as_u64().unwrap_or(0))
}

/// The edges `source -> target`: one per kind (a call whose callee never
/// reported is an `external` edge beside the `rpc` one).
fn edges<'a>(
    graph: &'a Value,
    source: &'a str,
    target: &'a str,
) -> impl Iterator<Item = &'a Value> {
    graph["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |e| e["source"] == source && e["target"] == target)
}

/// `field` summed over the edges `source -> target`, 0 when there are none.
fn edge_u64(graph: &Value, source: &str, target: &str, field: &str) -> u64 {
    edges(graph, source, target)
        .map(|e| e[field].as_u64().unwrap_or(0))
        .sum()
}

/// Whether `source -> target` is in the graph with `kind`.
fn has_edge(graph: &Value, source: &str, target: &str, kind: &str) -> bool {
    edges(graph, source, target).any(|e| e["kind"] == kind)
}

/// The tests take turns: each runs a faultline and a shop of its own, and
/// on a 2-core machine three at once slow each other into timeouts.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Polls `/api/graph?window=all` for at most 30 s until `done` holds.
async fn wait_for(fl: &Running, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let graph = get_json(fl, "/api/graph?window=all").await;
        if done(&graph) {
            return graph;
        }
        assert!(
            Instant::now() < deadline,
            "within 30 s, never {what}; last graph:\n{graph:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_is_the_shop_and_every_confirmation_is_counted() {
    let _turn = TURN.lock().await;
    let fl = faultline().await;
    let shop = shop(&fl, patient(ShopConfig::direct())).await;
    for d in Dependency::ALL {
        assert_eq!(shop.route(d), shop.upstream(d), "{d} is called directly");
    }
    let traffic_cfg = TrafficConfig {
        rate: 10.0,
        burst_factor: 2.0,
        burst_every: Duration::from_secs(4),
        burst_length: Duration::from_secs(1),
        customers: 6,
        skus: 4,
        duration: Duration::from_secs(8),
        ..TrafficConfig::default()
    };
    let report = traffic(&shop, traffic_cfg).await;
    // Only a starved machine fails checkouts here; the counts below must
    // add up either way.
    assert!(
        report.ok * 2 >= report.requests,
        "orders placed: {report:?}"
    );
    assert!(
        shop.wait_drained(Duration::from_secs(20)).await,
        "{:?}",
        shop.stats()
    );
    let stats = shop.stats();
    assert_eq!(stats.messages_produced, report.ok, "{stats:?}");
    assert_eq!((stats.redelivered, stats.dropped), (0, 0), "{stats:?}");
    shop.stop().await.expect("every span flushed");

    let n = report.ok;
    let graph = wait_for(
        &fl,
        "every edge, and each order produced and consumed once",
        |g| {
            EDGES.iter().all(|(s, t, kind)| has_edge(g, s, t, kind))
                && edge_u64(g, "gateway", "orders", "calls") == report.requests
                && edge_u64(g, "orders", "notifier", "calls") == n
                && (dest_u64(g, "produced"), dest_u64(g, "consumed")) == (n, n)
        },
    )
    .await;
    let failed = edge_u64(&graph, "gateway", "orders", "errors");
    assert_eq!(failed, report.errors, "failed checkouts");
    for service in demo::SERVICES {
        let n = node(&graph, service).unwrap_or_else(|| panic!("no node {service}"));
        assert_eq!(n["kind"], "service", "{n}");
    }
    for (db, system) in [("inventory-cache", "redis"), ("inventory-db", "postgresql")] {
        let n = node(&graph, db).unwrap_or_else(|| panic!("no node {db}"));
        assert_eq!(n["kind"], "database", "{n}");
        assert_eq!(n["system"], system, "{n}");
    }
    let d = destination(&graph).expect("notifications");
    assert_eq!(d["system"], demo::MESSAGING_SYSTEM, "{d}");
    assert_eq!(d["in_flight"], 0, "{d}");
    assert_eq!(d["out_of_order"], 0, "{d}");
    assert_eq!(d["producers"], serde_json::json!(["orders"]), "{d}");
    assert_eq!(d["consumers"], serde_json::json!(["notifier"]), "{d}");
    let retries = edge_u64(&graph, "orders", "payments", "retries");
    assert_eq!(retries, stats.retried_charges, "charges retried");
    fl.stop().await.expect("faultline stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_email_provider_backs_up_the_queue_and_reorders_confirmations() {
    let _turn = TURN.lock().await;
    let fl = faultline().await;
    let cfg = ShopConfig {
        // 75–225 ms per email against a 180 ms timeout: about 3 in 10
        // deliveries fail and go to the back of the queue.
        email_latency: Duration::from_millis(150),
        email_timeout: Duration::from_millis(180),
        payments_timeout: PATIENT,
        ..ShopConfig::direct()
    };
    let shop = shop(&fl, cfg).await;
    let traffic_cfg = TrafficConfig {
        rate: 5.0,
        burst_factor: 3.0,
        burst_every: Duration::from_secs(2),
        burst_length: Duration::from_secs(1),
        customers: 4,
        skus: 4,
        duration: Duration::from_secs(4),
        ..TrafficConfig::default()
    };
    let report = traffic(&shop, traffic_cfg).await;
    assert!(shop.queue_depth() > 0, "backed up: {:?}", shop.stats());

    // Signal 2, while the queue is still backed up: faultline sees every
    // order published and messages in flight, or (when redeliveries, which
    // count as consumptions, outnumber the backlog) messages that already
    // waited over a second.
    let placed = report.ok;
    let backed_up = wait_for(&fl, "every order produced", |g| {
        dest_u64(g, "produced") == placed
    })
    .await;
    let d = destination(&backed_up).expect("notifications");
    let waited = d["lag_ms"]["max"].as_f64().unwrap_or(0.0);
    assert!(
        d["in_flight"].as_u64() > Some(0) || waited > 1000.0,
        "backed up: {d}"
    );

    assert!(
        shop.wait_drained(Duration::from_secs(40)).await,
        "{:?}",
        shop.stats()
    );
    let stats = shop.stats();
    assert!(stats.redelivered > 0, "some emails failed: {stats:?}");
    shop.stop().await.expect("every span flushed");

    // Signal 3: confirmations delivered out of sequence per customer; and
    // signal 2 again: messages waited for seconds.
    let graph = wait_for(&fl, "every delivery consumed, some out of order", |g| {
        dest_u64(g, "consumed") == stats.deliveries && dest_u64(g, "out_of_order") > 0
    })
    .await;
    let d = destination(&graph).expect("notifications");
    let lag_max = d["lag_ms"]["max"].as_f64().unwrap_or(0.0);
    assert!(lag_max > 1000.0, "queue lag max {lag_max} ms: {d}");
    assert!(
        edge_u64(&graph, "notifier", "email-provider", "timeouts") > 0,
        "{graph:#}"
    );
    fl.stop().await.expect("faultline stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_payments_multiply_calls_to_the_inventory_cache() {
    let _turn = TURN.lock().await;
    let fl = faultline().await;
    let cfg = ShopConfig {
        payments_failure_rate: 0.5,
        ..ShopConfig::direct()
    };
    let shop = shop(&fl, cfg).await;
    let traffic_cfg = TrafficConfig {
        rate: 8.0,
        burst_factor: 1.0,
        customers: 6,
        skus: 4,
        duration: Duration::from_secs(4),
        ..TrafficConfig::default()
    };
    let report = traffic(&shop, traffic_cfg).await;
    let stats = shop.stats();
    assert!(stats.retried_charges > 0, "retries: {stats:?} {report:?}");
    assert!(shop.wait_drained(Duration::from_secs(20)).await);
    shop.stop().await.expect("every span flushed");

    // Signal 1: faultline counts every retry orders made, and the cache
    // edge carries every call inventory made — well over the two per order
    // a healthy shop makes.
    // Every attempt starts with a reservation: the reservations retried
    // are the attempts beyond one per checkout.
    let reserve_retries = stats.payment_attempts - report.requests;
    let graph = wait_for(&fl, "every attempt and cache call", |g| {
        edge_u64(g, "orders", "payments", "attempts") == stats.charges
            && edge_u64(g, "orders", "payments", "retries") == stats.retried_charges
            && edge_u64(g, "inventory", "inventory-cache", "calls") == stats.cache_calls
    })
    .await;
    let per_order = stats.cache_calls as f64 / report.requests as f64;
    assert!(per_order > 2.5, "cache calls per checkout: {per_order}");
    assert_eq!(
        edge_u64(&graph, "orders", "inventory", "retries"),
        reserve_retries,
        "reservations are retried with the charge"
    );
    fl.stop().await.expect("faultline stops");
}
