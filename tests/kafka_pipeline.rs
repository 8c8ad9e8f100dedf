//! The whole way to Kafka: OTLP traffic with a known degradation of one
//! edge goes into `faultline serve` configured like `pipelines/kafka.yaml`,
//! and an rdkafka consumer reads the signals, anomalies and hotspots back
//! from a real Kafka-protocol broker (tansu).

use crate::common;

use std::time::Duration;

use common::tansu::Tansu;
use common::traffic::healthy_degraded_healthy;
use serde_json::Value;

const TOPICS: [&str; 5] = [
    "faultline.signals",
    "faultline.hotspots",
    "faultline.anomalies",
    "faultline.scenarios",
    "faultline.experiments",
];

async fn serve_to(tansu: &Tansu) -> faultline::cli::serve::Running {
    let text = faultline::config::on_free_ports(
        include_str!("../pipelines/kafka.yaml"),
        &common::data_dir(),
    )
    .replace(
        "${env:FAULTLINE_KAFKA_BROKERS:-127.0.0.1:9092}",
        &tansu.brokers(),
    );
    let config = faultline::config::parse("kafka test", &text).unwrap();
    faultline::cli::serve::start(&config)
        .await
        .expect("starts with Kafka")
}

/// Reads a topic until `done` holds for the messages read or 30 s pass;
/// returns (key, JSON) pairs.
async fn read(
    tansu: &Tansu,
    topic: &'static str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<(String, Value)> {
    let parse = |v: &[u8]| -> Value { serde_json::from_slice(v).expect("every message is JSON") };
    let consumed = tokio::task::block_in_place(|| {
        tansu.consume(topic, Duration::from_secs(30), |read| {
            done(&read.iter().map(|(_, v)| parse(v)).collect::<Vec<_>>())
        })
    });
    consumed.into_iter().map(|(k, v)| (k, parse(&v))).collect()
}

fn has(messages: &[Value], key: &str, signal: &str, state: &str) -> bool {
    messages
        .iter()
        .any(|m| m["key"] == key && m["signal"] == signal && m["state"] == state)
}

fn check_schema(name: &str, messages: &[(String, Value)]) {
    let schema = common::schema::load(name);
    for (key, m) in messages {
        let bad = common::schema::violations(&schema, m);
        assert!(bad.is_empty(), "{name}: {bad:?} in {m}");
        assert_eq!(
            m["key"],
            key.as_str(),
            "the Kafka key is the record's target key"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_edge_reaches_kafka_as_anomaly_and_top_hotspot() {
    let tansu = Tansu::start();
    for t in TOPICS {
        tansu.create_topic(t, 3);
    }
    let running = serve_to(&tansu).await;
    let url = format!("http://{}/v1/traces", running.http.unwrap());
    let phases = [
        Duration::from_secs(8),
        Duration::from_secs(3),
        Duration::from_secs(5),
    ];
    let (start_ms, end_ms) = healthy_degraded_healthy(&url, phases).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    running.stop().await.unwrap();

    let key = "edge:orders->payments";
    let anomalies = read(&tansu, "faultline.anomalies", |m| {
        has(m, key, "p99_ms", "end")
    })
    .await;
    check_schema("anomaly", &anomalies);
    let find = |state: &str| {
        anomalies
            .iter()
            .map(|(_, m)| m)
            .find(|m| m["key"] == key && m["signal"] == "p99_ms" && m["state"] == state)
            .unwrap_or_else(|| panic!("no {state} of the p99 anomaly in {anomalies:?}"))
    };
    let started = find("start")["started_ms"].as_u64().unwrap();
    let ended = find("end")["ended_ms"].as_u64().unwrap();
    assert!(
        started >= start_ms && started <= start_ms + 3000,
        "started {started}, degraded at {start_ms}"
    );
    assert!(
        ended >= end_ms && ended <= end_ms + 3000,
        "ended {ended}, healthy again at {end_ms}"
    );

    // The topic has 3 partitions, read interleaved: a hotspot after the
    // degradation can arrive before the edge's partition reaches the
    // degradation's windows, so wait for both.
    let hotspots = read(&tansu, "faultline.hotspots", |m| {
        let after = m
            .iter()
            .any(|h| h["at_ms"].as_u64().is_some_and(|at| at > end_ms + 1000));
        after && !common::tops_during(m, start_ms, end_ms).is_empty()
    })
    .await;
    check_schema("hotspot", &hotspots);
    let tops = common::tops_during(hotspots.iter().map(|(_, h)| h), start_ms, end_ms);
    assert!(
        !tops.is_empty(),
        "hotspots were published during the degradation"
    );
    assert!(tops.iter().all(|h| h["key"] == key), "{tops:?}");

    // As above: the edge's partition may come after 50 messages of others.
    let signals = read(&tansu, "faultline.signals", |m| {
        m.len() >= 50 && m.iter().any(|s| s["key"] == key)
    })
    .await;
    check_schema("signal", &signals);
    assert!(signals.iter().any(|(k, _)| k == key));
}
