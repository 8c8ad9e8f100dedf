//! The Kafka exporter against a real broker (tansu, in memory, on a free
//! loopback port per test): topics and keys, start-up errors, a broker that
//! goes away and comes back, and the buffer bound.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tansu::{free_port, Consumed, Tansu};
use faultline::exporters::kafka::{Encoding, KafkaConfig, KafkaError, KafkaExporter, Topics};
use faultline::exporters::{Exporter, Record, Stream};
use faultline::telemetry::{GraphGauges, Telemetry};
use serde_json::{json, Value};

/// Time for records to reach a consumer once the broker has them.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(30);

fn config(brokers: String, buffer_max_records: usize) -> KafkaConfig {
    KafkaConfig {
        brokers,
        topics: Topics::default(),
        encoding: Encoding::Json,
        buffer_max_records,
        startup_timeout: Duration::from_secs(10),
        client_id: "faultline-test".into(),
        properties: BTreeMap::new(),
    }
}

/// A broker with every stream's default topic.
fn broker_with_topics() -> Tansu {
    let tansu = Tansu::start();
    create_topics(&tansu);
    tansu
}

fn create_topics(tansu: &Tansu) {
    for stream in Stream::ALL {
        tansu.create_topic(Topics::default().of(stream), 3);
    }
}

fn start(tansu: &Tansu, buffer: usize) -> (KafkaExporter, Arc<Telemetry>) {
    let telemetry = Arc::new(Telemetry::new());
    let exporter = KafkaExporter::start(&config(tansu.brokers(), buffer), telemetry.clone())
        .unwrap_or_else(|e| panic!("exporter starts: {e}\n{}", tansu.log_tail()));
    (exporter, telemetry)
}

/// A record whose payload names its stream, key and sequence number.
fn record(stream: Stream, key: &str, seq: u64) -> Record {
    Record::new(
        stream,
        key,
        &json!({"stream": stream.name(), "key": key, "seq": seq}),
    )
}

fn body(message: &Consumed) -> Value {
    serde_json::from_slice(&message.1).expect("payload is JSON")
}

/// Sequence numbers of one key's messages, in the order they were read.
fn seqs_of(messages: &[Consumed], key: &str) -> Vec<u64> {
    messages
        .iter()
        .filter(|m| m.0 == key)
        .map(|m| body(m)["seq"].as_u64().expect("seq"))
        .collect()
}

/// `faultline_exporter_sent_records_total` for the kafka exporter and a stream.
fn sent(telemetry: &Telemetry, stream: Stream) -> u64 {
    let text = telemetry.render(&GraphGauges::default());
    let series = format!(
        "faultline_exporter_sent_records_total{{exporter=\"kafka\",stream=\"{}\"}} ",
        stream.name()
    );
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().expect("a counter value"))
}

fn topic(stream: Stream) -> String {
    Topics::default().of(stream).to_string()
}

#[test]
fn records_reach_their_streams_topics_with_their_keys_in_order() {
    let tansu = broker_with_topics();
    let (exporter, telemetry) = start(&tansu, 1000);
    let streams = [Stream::Signals, Stream::Hotspots, Stream::Anomalies];
    let keys = ["edge:checkout->payments", "node:orders"];
    for seq in 0..20 {
        let batch: Vec<Record> = streams
            .iter()
            .flat_map(|&s| keys.iter().map(move |k| record(s, k, seq)))
            .collect();
        exporter.export(&batch);
    }
    exporter.flush(Duration::from_secs(20));

    for stream in streams {
        assert_eq!(sent(&telemetry, stream), 40, "{} sent", stream.name());
        let read = tansu.consume(&topic(stream), CONSUME_TIMEOUT, |m| m.len() >= 40);
        assert_eq!(
            read.len(),
            40,
            "{} messages on {}",
            stream.name(),
            topic(stream)
        );
        for message in &read {
            assert_eq!(body(message)["stream"], stream.name(), "on the right topic");
            assert_eq!(
                body(message)["key"],
                message.0,
                "the record's key is the Kafka key"
            );
        }
        for key in keys {
            assert_eq!(
                seqs_of(&read, key),
                (0..20).collect::<Vec<_>>(),
                "{key} in order"
            );
        }
    }
    assert_eq!(telemetry.export_dropped_total("kafka"), 0);
}

#[test]
fn start_fails_in_time_naming_an_address_nobody_listens_on() {
    let brokers = format!("127.0.0.1:{}", free_port());
    let mut config = config(brokers.clone(), 1000);
    config.startup_timeout = Duration::from_secs(2);
    let began = Instant::now();
    let error = KafkaExporter::start(&config, Arc::new(Telemetry::new()))
        .err()
        .expect("start-up fails with no broker");
    let elapsed = began.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "failed only after {elapsed:?}"
    );
    assert!(matches!(error, KafkaError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    eprintln!("{message}");
    assert!(message.contains(&brokers), "names the address: {message}");
    assert!(
        message.contains("within 2s"),
        "names the timeout: {message}"
    );
    assert!(
        message.contains("check that"),
        "says what to check: {message}"
    );
}

#[test]
fn start_fails_naming_a_missing_topic_and_its_stream() {
    let tansu = Tansu::start();
    for stream in Stream::ALL.into_iter().filter(|&s| s != Stream::Hotspots) {
        tansu.create_topic(&topic(stream), 1);
    }
    let error = KafkaExporter::start(&config(tansu.brokers(), 1000), Arc::new(Telemetry::new()))
        .err()
        .expect("start-up fails with a topic missing");
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        message.contains("faultline.hotspots (stream hotspots)"),
        "names the topic and stream: {message}"
    );
    assert!(
        !message.contains("faultline.signals"),
        "names only what is missing: {message}"
    );
    assert!(
        message.contains("tansu topic create faultline.hotspots"),
        "says how to create it: {message}"
    );
}

#[test]
fn protobuf_encoding_is_refused_clearly() {
    let mut config = config(format!("127.0.0.1:{}", free_port()), 1000);
    config.encoding = Encoding::Protobuf;
    let error = KafkaExporter::start(&config, Arc::new(Telemetry::new()))
        .err()
        .expect("protobuf is refused");
    assert_eq!(
        error.to_string(),
        "exporters.kafka: encoding: protobuf is not implemented yet; use json"
    );
}

/// tansu's in-memory storage forgets topics, records and producer ids on a
/// restart; librdkafka then retries forever against an unknown producer id
/// and the exporter must notice and replace its producer.
#[test]
fn records_exported_while_the_broker_is_down_arrive_after_it_returns() {
    let mut tansu = broker_with_topics();
    let (exporter, telemetry) = start(&tansu, 1000);
    let key = "edge:a->b";
    let signals = topic(Stream::Signals);
    let export = |seqs: std::ops::Range<u64>| {
        for n in seqs {
            exporter.export(&[record(Stream::Signals, key, n)]);
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    export(0..10);
    exporter.flush(Duration::from_secs(20));
    let read = tansu.consume(&signals, CONSUME_TIMEOUT, |m| m.len() >= 10);
    assert_eq!(seqs_of(&read, key), (0..10).collect::<Vec<_>>());

    tansu.stop();
    let began = Instant::now();
    export(10..40);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "exports do not block while the broker is away"
    );
    tansu.restart();
    create_topics(&tansu);
    export(40..50);

    exporter.flush(Duration::from_secs(30));
    let read = tansu.consume(&signals, CONSUME_TIMEOUT, |m| {
        let seqs = seqs_of(m, key);
        (10..50).all(|n| seqs.contains(&n))
    });
    let seqs = seqs_of(&read, key);
    let missing: Vec<u64> = (10..50).filter(|n| !seqs.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}; read {seqs:?}\n{}",
        tansu.log_tail()
    );
    assert_eq!(
        seqs,
        (10..50).collect::<Vec<_>>(),
        "in order, no duplicates"
    );
    assert_eq!(telemetry.export_dropped_total("kafka"), 0);
    assert_eq!(sent(&telemetry, Stream::Signals), 50);
}

/// A fatal error (librdkafka's idempotence guard gives up on the producer
/// and purges its queue): the exporter replaces the producer and re-enqueues
/// the purged records, and the ones exported meanwhile, in order.
#[test]
fn a_fatal_producer_error_is_recovered_without_losing_records() {
    let mut tansu = broker_with_topics();
    let (exporter, telemetry) = start(&tansu, 1000);
    let key = "node:payments";
    let export = |seqs: std::ops::Range<u64>| {
        for n in seqs {
            exporter.export(&[record(Stream::Hotspots, key, n)]);
        }
    };

    // Queued while the broker is away, so the fatal error purges them.
    tansu.stop();
    export(0..10);
    exporter.inject_fatal_error();
    // Let the purge happen before anything else touches the dead producer.
    std::thread::sleep(Duration::from_millis(300));
    export(10..20);
    tansu.restart();
    create_topics(&tansu);
    export(20..30);
    exporter.flush(Duration::from_secs(30));

    let read = tansu.consume(&topic(Stream::Hotspots), CONSUME_TIMEOUT, |m| m.len() >= 30);
    assert_eq!(
        seqs_of(&read, key),
        (0..30).collect::<Vec<_>>(),
        "all delivered, in order, once"
    );
    assert_eq!(telemetry.export_dropped_total("kafka"), 0);
    assert_eq!(sent(&telemetry, Stream::Hotspots), 30);
}

#[test]
fn a_full_buffer_drops_and_counts_the_overflow_while_the_broker_is_down() {
    let mut tansu = broker_with_topics();
    let (exporter, telemetry) = start(&tansu, 5);
    tansu.stop();
    let began = Instant::now();
    let batch: Vec<Record> = (0..20).map(|n| record(Stream::Anomalies, "k", n)).collect();
    exporter.export(&batch);
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "export does not block"
    );
    assert_eq!(telemetry.export_dropped_total("kafka"), 15);

    // What fit in the buffer is delivered once the broker is back.
    tansu.restart();
    create_topics(&tansu);
    exporter.flush(Duration::from_secs(30));
    let read = tansu.consume(&topic(Stream::Anomalies), CONSUME_TIMEOUT, |m| m.len() >= 5);
    assert_eq!(seqs_of(&read, "k"), vec![0, 1, 2, 3, 4]);
}
