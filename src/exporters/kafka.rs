//! The Kafka exporter: records to topics, keyed by target, via librdkafka.
//!
//! Each record goes to its stream's topic (`exporters.kafka.topics`), with
//! its target key (`edge:a->b`) as the Kafka key, so one target's records
//! share a partition and stay in order, and its JSON body as the value.
//!
//! # Start-up
//!
//! [`KafkaExporter::start`] asks for the cluster metadata once, waiting up
//! to `startup_timeout`, and refuses to start when no broker answers or when
//! any stream's topic is missing (all five: signals, hotspots, anomalies,
//! scenarios, experiments; the error lists every missing one). faultline
//! never creates topics (`allow.auto.create.topics=false`): partitions,
//! retention and replication are the operator's decisions.
//!
//! # Delivery semantics
//!
//! At least once, in order per key. The producer is idempotent
//! (`enable.idempotence=true`, `acks=all`), so librdkafka's own retries
//! neither duplicate nor reorder. `message.timeout.ms=0`: no record is given
//! up on for taking too long; while the broker is away records wait in
//! librdkafka's queue and go out when it is back. [`Exporter::export`] never
//! blocks: it hands records to librdkafka and returns. [`Exporter::flush`]
//! (at shutdown) waits for delivery up to its timeout; records still unsent
//! when the exporter is dropped are purged and counted as dropped.
//!
//! # The buffer bound
//!
//! `buffer_max_records` is librdkafka's `queue.buffering.max.messages`:
//! records queued or in flight. When it is full a new record is dropped at
//! once, counted, and logged (one line a second at most, with the number
//! dropped since the last line): a slow or absent broker never slows the
//! operators down. librdkafka's byte bound (`queue.buffering.max.kbytes`,
//! 1 GiB by default) applies too and can be set in `properties`. While a
//! producer is being replaced (below), records wait in a list with the same
//! bound.
//!
//! # In `/metrics`
//!
//! * `faultline_exporter_sent_records_total{exporter="kafka",stream}`:
//!   records the broker acknowledged (counted from delivery reports, not
//!   when enqueued).
//! * `faultline_exporter_dropped_records_total{exporter="kafka",stream}`:
//!   records given up on: buffer full, delivery failed (e.g. the topic was
//!   deleted), or still unsent when the exporter stopped.
//! * `faultline_exporter_buffered_records{exporter="kafka",stream="all"}`:
//!   records waiting (librdkafka's queue and in-flight requests, plus any
//!   waiting for a replacement producer), refreshed on every export and
//!   every second.
//!
//! # When the producer must be replaced
//!
//! Two situations leave a librdkafka producer unable to deliver again. In
//! both the exporter retires it, builds a new one, and re-enqueues what the
//! old one still held, plus what was exported meanwhile, in export order:
//!
//! * A fatal error: librdkafka's idempotence guard gives up (e.g. a sequence
//!   gap it cannot repair), purges the queue and refuses new records.
//! * A broker that has forgotten the producer id. Observed with tansu 0.6
//!   (in-memory storage) killed and restarted on the same port: every
//!   produce request is answered `UNKNOWN_PRODUCER_ID`, and librdkafka 2.12
//!   does not raise a fatal error: it bumps the epoch locally and retries,
//!   about ten times a second, forever (tansu only knows ids it handed out
//!   itself, so the bumped epoch does not help). Nothing is delivered and
//!   nothing fails. The exporter reads librdkafka's statistics every second
//!   (`statistics.interval.ms=1000`; setting it to 0 in `properties` turns
//!   this watch off) and retires the producer when its epoch has moved
//!   [`EPOCH_STORM`] times without standing still for an interval. The new
//!   producer gets a fresh id and the waiting records go out, in the tests
//!   about two seconds after the broker came back, none lost, none
//!   duplicated.
//!
//! Across a replacement delivery is at least once, not exactly once: a
//! record the old producer had in flight, and the broker had written, is
//! sent again. After the tansu restart above the refused records had not
//! been written, so nothing is duplicated there. An in-memory broker also
//! forgets its topics: they must be created again within
//! `topic.metadata.propagation.max.ms` (30 s by default) of the replacement,
//! or the waiting records fail as unknown-topic and are counted as dropped.
//! Records the old broker had acknowledged are gone with its memory; no
//! producer can bring those back.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::util::Timeout;
use serde::Deserialize;

use super::{Exporter, Record, Stream};
use crate::telemetry::Telemetry;

/// The exporter's name in metrics and logs.
const NAME: &str = "kafka";

/// `exporters.kafka` in the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// Topic per stream; each defaults to `faultline.<stream>`.
    #[serde(default)]
    pub topics: Topics,
    /// `json` (default) or `protobuf` (schemas in `proto/faultline.proto`).
    #[serde(default)]
    pub encoding: Encoding,
    /// Records that may wait while the broker is away; past it, new records
    /// are dropped and counted in `faultline_exporter_dropped_records_total`.
    #[serde(default = "default_buffer")]
    pub buffer_max_records: usize,
    /// How long start-up waits for the broker to answer before failing.
    #[serde(
        default = "default_startup_timeout",
        deserialize_with = "crate::config::model::duration"
    )]
    pub startup_timeout: Duration,
    /// `client.id` the broker sees.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Extra librdkafka settings (`security.protocol`, `compression.type`…),
    /// applied last.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `exporters.kafka.topics`: the topic each stream's records go to. Every
/// one must exist on the broker (checked at start-up).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub signals: String,
    pub hotspots: String,
    pub anomalies: String,
    pub scenarios: String,
    pub experiments: String,
}

impl Default for Topics {
    fn default() -> Self {
        let t = |s: Stream| format!("faultline.{}", s.name());
        Topics {
            signals: t(Stream::Signals),
            hotspots: t(Stream::Hotspots),
            anomalies: t(Stream::Anomalies),
            scenarios: t(Stream::Scenarios),
            experiments: t(Stream::Experiments),
        }
    }
}

impl Topics {
    /// The topic of `stream`'s records.
    pub fn of(&self, stream: Stream) -> &str {
        match stream {
            Stream::Signals => &self.signals,
            Stream::Hotspots => &self.hotspots,
            Stream::Anomalies => &self.anomalies,
            Stream::Scenarios => &self.scenarios,
            Stream::Experiments => &self.experiments,
        }
    }
}

/// How a record's body is written into the Kafka value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Json,
    Protobuf,
}

fn default_buffer() -> usize {
    100_000
}

fn default_startup_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_client_id() -> String {
    "faultline".into()
}

/// Why the exporter could not start. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A configured feature faultline does not have yet.
    #[error("exporters.kafka: {0}")]
    Unsupported(&'static str),
    /// librdkafka refused a setting (usually one from `properties`).
    #[error("exporters.kafka: librdkafka refused the configuration: {0}")]
    Config(#[source] RdKafkaError),
    /// No broker answered a metadata request within `startup_timeout`.
    #[error(
        "exporters.kafka: no Kafka broker at {brokers} answered within {}: {cause}; \
         check that `exporters.kafka.brokers` names the right host:port, that the broker is running \
         and reachable from this machine, and that its advertised listener resolves here",
        humantime::format_duration(*.timeout)
    )]
    Unreachable {
        brokers: String,
        timeout: Duration,
        #[source]
        cause: RdKafkaError,
    },
    /// Topics the pipeline names are not on the broker.
    #[error("{}", missing_topics_message(.brokers, .missing))]
    MissingTopics {
        brokers: String,
        missing: Vec<MissingTopic>,
    },
}

/// A configured topic the broker does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTopic {
    pub stream: Stream,
    pub topic: String,
}

fn missing_topics_message(brokers: &str, missing: &[MissingTopic]) -> String {
    let list: Vec<String> = missing
        .iter()
        .map(|m| format!("{} (stream {})", m.topic, m.stream.name()))
        .collect();
    let first_broker = brokers.split(',').next().unwrap_or(brokers).trim();
    let example = missing.first().map_or("faultline.signals", |m| &m.topic);
    format!(
        "exporters.kafka: topic{} {} not found on the broker at {brokers}; faultline never \
         creates topics: create {} first, e.g. `tansu topic create {example} --broker \
         tcp://{first_broker}` or `kafka-topics --bootstrap-server {first_broker} --create \
         --topic {example}`, or point `exporters.kafka.topics` at existing ones",
        if list.len() == 1 { "" } else { "s" },
        list.join(", "),
        if list.len() == 1 { "it" } else { "each" },
    )
}

/// The producer type: librdkafka with its own polling thread, so delivery
/// reports are handled without any help from the operators' threads.
type KafkaProducer = ThreadedProducer<Context>;

/// Sends records to Kafka; see the module documentation for the guarantees.
pub struct KafkaExporter {
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    supervisor: Option<thread::JoinHandle<()>>,
}

/// What the exporter's handle and its supervisor thread share.
struct Shared {
    topics: Topics,
    client_config: ClientConfig,
    sink: Arc<Sink>,
    /// Swapped for a fresh producer when the current one is retired.
    producer: RwLock<Arc<KafkaProducer>>,
    /// Export order, so records rescued from a failed producer are
    /// re-enqueued in the order they were first exported.
    next_seq: AtomicU64,
}

/// State the delivery callbacks of every producer generation share. Kept
/// apart from [`Shared`] so producers (which own their context) do not keep
/// themselves alive through it.
struct Sink {
    telemetry: Arc<Telemetry>,
    bound: usize,
    /// Records waiting for a replacement producer, and whether one is being
    /// built (new exports wait here meanwhile, to stay in order).
    rescue: Mutex<Vec<Pending>>,
    recovering: AtomicBool,
    drop_log: LogLimiter,
    error_log: LogLimiter,
    events: mpsc::Sender<Event>,
}

/// A record with its export sequence number.
struct Pending {
    seq: u64,
    record: Record,
}

enum Event {
    /// A producer was retired (see [`Context::retire`]) or reported an
    /// error that may be fatal: replace it if so.
    Check,
    /// Rescued records wait while no replacement is under way.
    Drain,
    /// The exporter is being dropped.
    Stop,
}

impl KafkaExporter {
    /// Connects to the brokers and checks that every stream's topic exists.
    ///
    /// Blocks for up to `startup_timeout` (call it from a blocking context).
    /// Fails when no broker answers in time or a topic is missing:
    /// exporting into the void until someone notices is worse than refusing
    /// to start.
    pub fn start(config: &KafkaConfig, telemetry: Arc<Telemetry>) -> Result<Self, KafkaError> {
        if config.encoding == Encoding::Protobuf {
            return Err(KafkaError::Unsupported(
                "encoding: protobuf is not implemented yet; use json",
            ));
        }
        let client_config = client_config(config);
        let (events, inbox) = mpsc::channel();
        let sink = Arc::new(Sink {
            telemetry,
            bound: config.buffer_max_records,
            rescue: Mutex::new(Vec::new()),
            recovering: AtomicBool::new(false),
            drop_log: LogLimiter::default(),
            error_log: LogLimiter::default(),
            events: events.clone(),
        });
        let producer = new_producer(&client_config, &sink).map_err(KafkaError::Config)?;
        check_broker(&producer, config)?;
        tracing::info!(brokers = %config.brokers, "kafka exporter connected");
        let shared = Arc::new(Shared {
            topics: config.topics.clone(),
            client_config,
            sink,
            producer: RwLock::new(Arc::new(producer)),
            next_seq: AtomicU64::new(0),
        });
        let supervisor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("kafka-supervisor".into())
                .spawn(move || supervise(&shared, &inbox))
                .expect("spawn the kafka supervisor thread")
        };
        Ok(KafkaExporter {
            shared,
            events,
            supervisor: Some(supervisor),
        })
    }

    /// Makes librdkafka fail the current producer as its idempotence guard
    /// would (out-of-order sequence), so tests can exercise the recovery.
    #[doc(hidden)]
    pub fn inject_fatal_error(&self) {
        let producer = self.shared.current();
        // SAFETY: the client pointer is valid while `producer` is held, and
        // `rd_kafka_test_fatal_error` is librdkafka's own test hook: it only
        // sets the client's fatal-error state, as a real fatal error would.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                producer.client().native_ptr(),
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                c"injected by a test".as_ptr(),
            );
        }
    }
}

impl Exporter for KafkaExporter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn export(&self, records: &[Record]) {
        let producer = self.shared.current();
        for record in records {
            let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
            self.shared.enqueue(&producer, seq, record);
        }
        self.shared.publish_buffered(&producer);
    }

    /// Waits for delivery; follows a replacement producer if one takes over
    /// meanwhile (the old one returns early, its records moved on).
    fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            while self.shared.sink.recovering.load(Ordering::Acquire) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let producer = self.shared.current();
            let left = deadline.saturating_duration_since(Instant::now());
            let result = producer.flush(Timeout::After(left));
            self.shared.publish_buffered(&producer);
            let replaced = !Arc::ptr_eq(&producer, &self.shared.current())
                || self.shared.sink.recovering.load(Ordering::Acquire);
            if replaced && Instant::now() < deadline {
                continue;
            }
            if let Err(error) = result {
                tracing::warn!(
                    %error,
                    unsent = producer.in_flight_count(),
                    "kafka exporter: not every record was delivered before the flush timeout"
                );
            }
            return;
        }
    }
}

impl Drop for KafkaExporter {
    /// Stops the supervisor; the producer then goes with `shared`, and
    /// librdkafka reports what was still unsent as purged, which is counted
    /// as dropped. Call [`Exporter::flush`] first to deliver it.
    fn drop(&mut self) {
        let _ = self.events.send(Event::Stop);
        if let Some(handle) = self.supervisor.take() {
            let _ = handle.join();
        }
        let unsent = self.shared.current().in_flight_count();
        if unsent > 0 {
            tracing::warn!(unsent, "kafka exporter stopped with records unsent");
        }
    }
}

impl Shared {
    fn current(&self) -> Arc<KafkaProducer> {
        self.producer.read().clone()
    }

    /// Hands one record to librdkafka without blocking: while a replacement
    /// producer is being built it waits in the rescue list; when the local
    /// queue is full it is dropped and counted.
    fn enqueue(&self, producer: &KafkaProducer, seq: u64, record: &Record) {
        if self.sink.recovering.load(Ordering::Acquire) && self.sink.hold_if_recovering(seq, record)
        {
            return;
        }
        if let Err(error) = self.send(producer, seq, record) {
            self.refused(producer, seq, record, &error);
        }
    }

    fn send(
        &self,
        producer: &KafkaProducer,
        seq: u64,
        record: &Record,
    ) -> Result<(), RdKafkaError> {
        let topic = self.topics.of(record.stream);
        let message = BaseRecord::with_opaque_to(topic, pack(seq, record.stream))
            .key(record.key.as_str())
            .payload(&*record.json);
        producer.send(message).map_err(|(error, _)| error)
    }

    /// A record librdkafka would not take.
    fn refused(&self, producer: &KafkaProducer, seq: u64, record: &Record, error: &RdKafkaError) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => {
                self.sink
                    .dropped(record.stream, "the buffer is full", error);
            }
            Some(RDKafkaErrorCode::Fatal) => {
                // The producer is dead; keep the record for its successor.
                producer.context().retire("fatal error");
                self.sink.rescue(Pending {
                    seq,
                    record: record.clone(),
                });
            }
            _ => self
                .sink
                .dropped(record.stream, "librdkafka refused it", error),
        }
    }

    fn publish_buffered(&self, producer: &KafkaProducer) {
        let waiting =
            producer.in_flight_count().max(0) as u64 + self.sink.rescue.lock().len() as u64;
        self.sink.telemetry.export_buffered(NAME, waiting);
    }

    /// Replaces a retired (or fatally failed) producer, then re-enqueues
    /// what it had not delivered. Runs on the supervisor thread only.
    fn check(&self) {
        let old = self.current();
        if let Some((code, reason)) = old.client().fatal_error() {
            old.context()
                .retire(&format!("fatal error: {code}: {reason}"));
        }
        if !old.context().retired.load(Ordering::Acquire) {
            // A stale event (already replaced): just move rescued records on.
            self.drain_rescue();
            return;
        }
        self.sink.recovering.store(true, Ordering::Release);
        let fresh = self.build_producer();
        *self.producer.write() = Arc::new(fresh);
        settle(&old);
        drop(old);
        self.drain_rescue();
        tracing::info!("kafka producer replaced");
    }

    /// A new producer; retries until librdkafka agrees (it did at start-up,
    /// so only resource exhaustion can make this loop).
    fn build_producer(&self) -> KafkaProducer {
        loop {
            match new_producer(&self.client_config, &self.sink) {
                Ok(producer) => return producer,
                Err(error) => {
                    tracing::error!(%error, "cannot create a kafka producer; retrying in 1s");
                    thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Sends rescued records to the current producer, oldest first, and
    /// lets exports through again.
    fn drain_rescue(&self) {
        let producer = self.current();
        let mut rescue = self.sink.rescue.lock();
        let mut pending = std::mem::take(&mut *rescue);
        pending.sort_by_key(|p| p.seq);
        let count = pending.len();
        for p in pending {
            if let Err(error) = self.send(&producer, p.seq, &p.record) {
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
                    // The replacement died too: keep the rest for the next round.
                    rescue.push(p);
                    producer.context().retire("fatal error");
                } else {
                    self.sink
                        .dropped(p.record.stream, "re-enqueue failed", &error);
                }
            }
        }
        self.sink.recovering.store(false, Ordering::Release);
        if count > 0 {
            tracing::info!(
                records = count,
                "kafka exporter re-enqueued rescued records"
            );
        }
    }
}

/// Gives a dead producer's in-flight requests a moment to finish, then
/// purges the rest so their delivery reports (and so the records) come back
/// to the rescue list before the producer is dropped.
fn settle(old: &KafkaProducer) {
    wait_until_empty(old, Duration::from_secs(1));
    old.purge(PurgeConfig::default().queue().inflight());
    wait_until_empty(old, Duration::from_secs(5));
}

fn wait_until_empty(producer: &KafkaProducer, limit: Duration) {
    let deadline = Instant::now() + limit;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
}

/// The supervisor thread: replaces retired producers, moves rescued records
/// on, and keeps the buffered-records gauge fresh while no exports arrive.
fn supervise(shared: &Shared, inbox: &mpsc::Receiver<Event>) {
    loop {
        match inbox.recv_timeout(Duration::from_secs(1)) {
            Ok(Event::Check) => shared.check(),
            Ok(Event::Drain) => shared.drain_rescue(),
            Ok(Event::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        shared.publish_buffered(&shared.current());
    }
}

impl Sink {
    /// Counts a lost record and says why, at most about once a second.
    fn dropped(&self, stream: Stream, why: &str, error: &dyn fmt::Display) {
        self.telemetry.export_dropped(NAME, stream.name(), 1);
        if let Some(suppressed) = self.drop_log.allow() {
            tracing::warn!(
                stream = stream.name(),
                %error,
                buffer_max_records = self.bound,
                also_dropped_since_last_log = suppressed,
                "kafka exporter dropped a record: {why}"
            );
        }
    }

    /// Keeps a record for the next producer, within the buffer bound.
    fn rescue(&self, pending: Pending) {
        let mut rescue = self.rescue.lock();
        if rescue.len() >= self.bound {
            drop(rescue);
            self.dropped(
                pending.record.stream,
                "the buffer is full",
                &"rescue list full",
            );
            return;
        }
        rescue.push(pending);
        if rescue.len() == 1 && !self.recovering.load(Ordering::Acquire) {
            // Rescued outside a replacement (a late delivery report): ask
            // the supervisor to move the list on, once.
            let _ = self.events.send(Event::Drain);
        }
    }

    /// Parks an export while a producer is being replaced; false when the
    /// replacement finished meanwhile (then the caller sends it).
    fn hold_if_recovering(&self, seq: u64, record: &Record) -> bool {
        let mut rescue = self.rescue.lock();
        if !self.recovering.load(Ordering::Acquire) {
            return false;
        }
        if rescue.len() >= self.bound {
            drop(rescue);
            self.dropped(
                record.stream,
                "the buffer is full",
                &"producer being replaced",
            );
        } else {
            rescue.push(Pending {
                seq,
                record: record.clone(),
            });
        }
        true
    }
}

/// One producer generation's callbacks.
struct Context {
    sink: Arc<Sink>,
    /// Set once this producer is beyond repair: from then on, records it
    /// fails or purges are rescued for its successor, not dropped.
    retired: AtomicBool,
    epochs: Mutex<Option<EpochWatch>>,
}

/// Producer epochs seen in librdkafka's statistics, to notice a broker
/// that keeps refusing our producer id (see the module documentation).
#[derive(Clone, Copy)]
struct EpochWatch {
    producer_id: i64,
    /// The epoch at the last report where it had not moved.
    quiet: i64,
    last: i64,
}

/// Epoch bumps with no quiet statistics interval in between that mean the
/// broker has forgotten this producer. A healthy cluster bumps at most once
/// per incident; a broker that lost its producer state makes librdkafka
/// bump about ten times a second, forever.
const EPOCH_STORM: i64 = 5;

impl Context {
    fn new(sink: Arc<Sink>) -> Context {
        Context {
            sink,
            retired: AtomicBool::new(false),
            epochs: Mutex::new(None),
        }
    }

    /// Marks this producer for replacement (once) and wakes the supervisor.
    fn retire(&self, why: &str) {
        if !self.retired.swap(true, Ordering::AcqRel) {
            tracing::error!(
                why,
                "kafka producer retired; replacing it and re-enqueueing its unsent records"
            );
            let _ = self.sink.events.send(Event::Check);
        }
    }

    /// Feeds one statistics report to the epoch watch; true on a storm.
    fn epoch_storm(&self, producer_id: i64, epoch: i64) -> bool {
        let mut watch = self.epochs.lock();
        let next = EpochWatch::observe(*watch, producer_id, epoch);
        *watch = Some(next);
        next.storm()
    }
}

impl EpochWatch {
    /// The watch after a report showing `epoch` for `producer_id`; a new id
    /// (or an epoch going backwards) starts afresh.
    fn observe(previous: Option<EpochWatch>, producer_id: i64, epoch: i64) -> EpochWatch {
        match previous {
            Some(w) if w.producer_id == producer_id && epoch >= w.last => EpochWatch {
                producer_id,
                quiet: if epoch == w.last { epoch } else { w.quiet },
                last: epoch,
            },
            _ => EpochWatch {
                producer_id,
                quiet: epoch,
                last: epoch,
            },
        }
    }

    /// The epoch has moved [`EPOCH_STORM`] times since it last stood still.
    fn storm(&self) -> bool {
        self.producer_id >= 0 && self.last - self.quiet >= EPOCH_STORM
    }
}

/// The part of librdkafka's statistics JSON the exporter reads.
#[derive(Deserialize)]
struct Stats {
    eos: Option<EosStats>,
}

#[derive(Deserialize)]
struct EosStats {
    producer_id: i64,
    producer_epoch: i64,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        use RDKafkaLogLevel::*;
        if facility == "FATAL" {
            // librdkafka logs a fatal error synchronously, before it purges
            // the queue; the error event that follows no longer says
            // "fatal". Retiring here means the purged records are rescued.
            self.retire(message);
        }
        // librdkafka's errors are mostly a broker being unreachable, which
        // the exporter rides out: a warning, not an error, for faultline.
        match level {
            Emerg | Alert | Critical => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            Error | Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            Notice | Info => tracing::info!(target: "librdkafka", facility, "{message}"),
            Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(Stats { eos: Some(eos) }) = serde_json::from_slice(statistics) else {
            return;
        };
        if self.epoch_storm(eos.producer_id, eos.producer_epoch) {
            self.retire(
                "the broker keeps refusing this producer id (it lost its producer state, \
                 e.g. an in-memory broker restarted)",
            );
        }
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        if let Some(suppressed) = self.sink.error_log.allow() {
            // Broker-down errors repeat while it is away; once a second is plenty.
            tracing::warn!(%error, reason, similar_suppressed = suppressed, "kafka client error");
        }
        // A fatal error's event carries the underlying code, not "fatal":
        // let the supervisor ask the client.
        let _ = self.sink.events.send(Event::Check);
    }
}

impl ProducerContext for Context {
    /// The stream and export sequence number, packed (see [`pack`]).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let (seq, stream) = unpack(opaque);
        match result {
            Ok(_) => self.sink.telemetry.exported(NAME, stream.name(), 1),
            Err((_, message)) if self.retired.load(Ordering::Acquire) => {
                // Purged or failed by a retired producer: the record is
                // still ours, hand it to the next one.
                let record = Record {
                    stream,
                    key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    json: message.payload().unwrap_or_default().into(),
                };
                self.sink.rescue(Pending { seq, record });
            }
            Err((error, _)) => self.sink.dropped(stream, "delivery failed", error),
        }
    }
}

/// Packs the export sequence number and the stream into the `usize` librdkafka
/// carries to the delivery report, so no allocation per record is needed.
fn pack(seq: u64, stream: Stream) -> usize {
    let index = Stream::ALL.iter().position(|s| *s == stream).unwrap_or(0);
    ((seq << 3) as usize) | index
}

fn unpack(opaque: usize) -> (u64, Stream) {
    (
        (opaque >> 3) as u64,
        Stream::ALL[(opaque & 7).min(Stream::ALL.len() - 1)],
    )
}

/// At most one log line per second; counts the lines it held back.
#[derive(Default)]
struct LogLimiter {
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    /// `Some(lines suppressed since the last one)` when a line may go out now.
    fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock();
        let (last, suppressed) = &mut *state;
        match last {
            Some(at) if at.elapsed() < Duration::from_secs(1) => {
                *suppressed += 1;
                None
            }
            _ => {
                *last = Some(Instant::now());
                Some(std::mem::take(suppressed))
            }
        }
    }
}

/// librdkafka settings: idempotent, acknowledged by all replicas, never
/// timing out (records wait while the broker is away, up to the buffer
/// bound), never creating topics, with statistics every second (the epoch
/// watch reads them); the user's `properties` last.
fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", &config.client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set(
            "queue.buffering.max.messages",
            config.buffer_max_records.to_string(),
        )
        .set("allow.auto.create.topics", "false")
        .set("statistics.interval.ms", "1000")
        .set_log_level(log_level());
    for (key, value) in &config.properties {
        c.set(key, value);
    }
    c
}

/// librdkafka's log level, from what `tracing` would print for it.
fn log_level() -> RDKafkaLogLevel {
    if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
        RDKafkaLogLevel::Debug
    } else if tracing::enabled!(target: "librdkafka", tracing::Level::INFO) {
        RDKafkaLogLevel::Info
    } else {
        RDKafkaLogLevel::Warning
    }
}

fn new_producer(config: &ClientConfig, sink: &Arc<Sink>) -> Result<KafkaProducer, RdKafkaError> {
    config.create_with_context(Context::new(sink.clone()))
}

/// One metadata request: the broker answers, and has every stream's topic.
fn check_broker(producer: &KafkaProducer, config: &KafkaConfig) -> Result<(), KafkaError> {
    let metadata = producer
        .client()
        .fetch_metadata(None, Timeout::After(config.startup_timeout))
        .map_err(|cause| KafkaError::Unreachable {
            brokers: config.brokers.clone(),
            timeout: config.startup_timeout,
            cause,
        })?;
    let missing: Vec<MissingTopic> = Stream::ALL
        .iter()
        .map(|&stream| (stream, config.topics.of(stream)))
        .filter(|(_, topic)| {
            !metadata
                .topics()
                .iter()
                .any(|t| t.name() == *topic && t.error().is_none() && !t.partitions().is_empty())
        })
        .map(|(stream, topic)| MissingTopic {
            stream,
            topic: topic.to_string(),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(KafkaError::MissingTopics {
            brokers: config.brokers.clone(),
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(reports: &[(i64, i64)]) -> Vec<bool> {
        let mut w = None;
        reports
            .iter()
            .map(|&(id, epoch)| {
                let next = EpochWatch::observe(w, id, epoch);
                w = Some(next);
                next.storm()
            })
            .collect()
    }

    #[test]
    fn an_epoch_storm_needs_five_bumps_without_a_quiet_interval() {
        // Steady, or one bump after an incident: fine.
        assert_eq!(watch(&[(1, 0), (1, 0), (1, 1), (1, 1)]), [false; 4]);
        // Ten bumps a second, as against a broker that forgot the id.
        assert_eq!(watch(&[(1, 0), (1, 3), (1, 6)]), [false, false, true]);
        // A quiet interval in between resets the count.
        assert_eq!(watch(&[(1, 0), (1, 2), (1, 2), (1, 4), (1, 6)]), [false; 5]);
        // A new producer id starts afresh; no id yet never storms.
        assert_eq!(watch(&[(1, 0), (1, 4), (2, 9)]), [false; 3]);
        assert_eq!(watch(&[(-1, -1), (-1, 9)]), [false; 2]);
    }

    #[test]
    fn the_delivery_opaque_round_trips_stream_and_sequence() {
        for stream in Stream::ALL {
            for seq in [0, 1, 12_345, 1 << 60] {
                assert_eq!(unpack(pack(seq, stream)), (seq, stream));
            }
        }
    }

    #[test]
    fn the_missing_topics_message_names_each_and_says_how_to_create_them() {
        let one = missing_topics_message(
            "b1:9092,b2:9092",
            &[MissingTopic {
                stream: Stream::Signals,
                topic: "t.signals".into(),
            }],
        );
        assert!(
            one.contains(
                "topic t.signals (stream signals) not found on the broker at b1:9092,b2:9092"
            ),
            "{one}"
        );
        assert!(
            one.contains("`tansu topic create t.signals --broker tcp://b1:9092`"),
            "{one}"
        );
        assert!(
            one.contains("kafka-topics --bootstrap-server b1:9092 --create --topic t.signals"),
            "{one}"
        );
        let two = missing_topics_message(
            "b:1",
            &[
                MissingTopic {
                    stream: Stream::Signals,
                    topic: "a".into(),
                },
                MissingTopic {
                    stream: Stream::Anomalies,
                    topic: "b".into(),
                },
            ],
        );
        assert!(
            two.contains("topics a (stream signals), b (stream anomalies) not found"),
            "{two}"
        );
        assert!(two.contains("create each first"), "{two}");
    }

    #[test]
    fn the_log_limiter_lets_one_line_a_second_through_and_counts_the_rest() {
        let limiter = LogLimiter::default();
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        limiter.state.lock().0 = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(limiter.allow(), Some(2));
    }
}
