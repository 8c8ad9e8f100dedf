//! Conformance with Grafana Tempo's service-graph fixtures
//! (`../shared/conformance/tempo-servicegraphs/`, expectations from its README).

use std::path::PathBuf;

use faultline::cli::analyze::analyze;
use faultline::graph::partial::{EdgeKind, NodeKind};
use faultline::graph::{GraphSettings, GraphView};

fn fixture(name: &str) -> GraphView {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/tempo-servicegraphs")
        .join(name);
    analyze(&[path], GraphSettings::default())
        .expect("fixture analyzes")
        .graph
}

/// (source, target, kind, calls, failed) for every edge, sorted.
fn edges(g: &GraphView) -> Vec<(String, String, EdgeKind, u64, u64)> {
    g.edges
        .iter()
        .map(|e| {
            (
                e.source.clone(),
                e.target.clone(),
                e.kind,
                e.calls,
                e.errors,
            )
        })
        .collect()
}

fn e(
    s: &str,
    t: &str,
    kind: EdgeKind,
    calls: u64,
    failed: u64,
) -> (String, String, EdgeKind, u64, u64) {
    (s.into(), t.into(), kind, calls, failed)
}

const REQUESTER: &str = "mythical-requester";
const SERVER: &str = "mythical-server";

#[test]
fn queue_database() {
    let g = fixture("trace-with-queue-database.json");
    assert_eq!(
        edges(&g),
        vec![
            e(REQUESTER, "mythical-recorder", EdgeKind::Messaging, 1, 0),
            e(REQUESTER, SERVER, EdgeKind::Rpc, 1, 0),
            e(SERVER, "postgres", EdgeKind::Database, 1, 0),
        ]
    );
    let rpc = g.edge(REQUESTER, SERVER).unwrap();
    let client = rpc.latency_ms.unwrap().mean;
    let server = rpc.server_latency_ms.unwrap().mean;
    assert!(
        client > 40.0 && (client - 45.0).abs() < 1.5,
        "client latency {client}"
    );
    assert!(
        server < 40.0 && (server - 29.0).abs() < 1.5,
        "server latency {server}"
    );
    let db = g.edge(SERVER, "postgres").unwrap().latency_ms.unwrap().mean;
    assert!((db - 23.0).abs() < 1.5, "db latency {db}");
    let queue = g
        .edge(REQUESTER, "mythical-recorder")
        .unwrap()
        .queue_latency_ms
        .unwrap();
    assert!(
        (queue.mean - 9.8816).abs() < 1e-9,
        "queue time {}",
        queue.mean
    );
    assert_eq!(g.node("postgres").unwrap().kind, NodeKind::Database);
    // The loki calls carry only net.peer.name: no edge, counted as expired.
    assert_eq!(g.unpaired.expired_client, 4);
    assert!(g.node("loki").is_none());
}

#[test]
fn failed_requests() {
    let g = fixture("trace-with-failed-requests.json");
    assert_eq!(
        edges(&g),
        vec![
            e(REQUESTER, SERVER, EdgeKind::Rpc, 1, 1),
            e(SERVER, "postgres", EdgeKind::Database, 1, 1)
        ]
    );
    assert_eq!(g.edge(REQUESTER, SERVER).unwrap().error_rate, 1.0);
}

#[test]
fn virtual_nodes_after_expiry() {
    let g = fixture("trace-with-virtual-nodes.json");
    assert_eq!(
        edges(&g),
        vec![
            e(
                "external-producer",
                "internal-consumer",
                EdgeKind::External,
                1,
                0
            ),
            e(
                REQUESTER,
                "external-payments-platform",
                EdgeKind::External,
                1,
                0
            ),
            e("user", SERVER, EdgeKind::External, 1, 0),
        ]
    );
    for virtual_node in ["external-producer", "external-payments-platform", "user"] {
        assert_eq!(
            g.node(virtual_node).unwrap().kind,
            NodeKind::External,
            "{virtual_node}"
        );
    }
    assert_eq!(g.unpaired.expired_to_virtual, 1);
}

#[test]
fn expired_edges() {
    let g = fixture("trace-with-expired-edges.json");
    // Tempo counts 4 store entries: 3 become edges, 1 unmatched SERVER span expires.
    assert_eq!(g.edges.len(), 3);
    assert_eq!(g.unpaired.expired_server, 1);
    assert_eq!(g.unpaired.dropped, 0);
    assert_eq!(g.edges.len() as u64 + g.unpaired.expired_server, 4);
}

fn database_target(file: &str) -> String {
    let g = fixture(file);
    let db: Vec<_> = g
        .edges
        .iter()
        .filter(|e| e.kind == EdgeKind::Database)
        .collect();
    assert_eq!(db.len(), 1, "{file}: one database edge");
    assert_eq!(db[0].source, SERVER, "{file}");
    assert_eq!(db[0].calls, 1, "{file}");
    assert_eq!(
        g.node(&db[0].target).unwrap().kind,
        NodeKind::Database,
        "{file}"
    );
    db[0].target.clone()
}

#[test]
fn database_naming_follows_tempo_order() {
    let cases = [
        ("trace-without-database-name.json", "mythical-database"),
        ("trace-with-queue-database2.json", "mythical-database"),
        ("trace-with-queue-database3.json", "mythical-database"),
        ("trace-with-queue-database4.json", "mythical-database:5432"),
        ("trace-with-queue-database5.json", "mythical-database"),
        ("trace-with-db-namespace.json", "mydb"),
        ("trace-with-both-db-attributes.json", "priority-db"),
        ("trace-with-db-system-name.json", "postgresql"),
        ("trace-with-db-system-and-system-name.json", "mssql"),
    ];
    for (file, expected) in cases {
        assert_eq!(database_target(file), expected, "{file}");
    }
}
