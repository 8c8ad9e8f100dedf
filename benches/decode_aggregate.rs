//! decode + aggregate on one core: the spans/s figures in docs/performance.md.
//!
//! Input: the standard shape (5 services, 10 attributes, ~300-byte spans,
//! 512 spans per request). Each `*_path` iteration decodes one request and
//! folds it into one aggregation shard — the fast path (`otlp_fast`: wire
//! bytes straight to spans) or the prost path (`otlp_proto`: the generated
//! message tree, then spans). Requests are generated outside the timed part
//! with fresh trace ids and a clock that moves 10 ms per request, and the
//! shard ticks every 100 ms of that clock, so windows close and traces are
//! assembled and expired as in a live collector: the figure is the steady
//! state, not a graph that only grows.
//!
//! The `decode_*` benches leave the graph out, so the two figures together
//! say where the time goes.
//!
//! Run: `cargo bench --bench decode_aggregate`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use faultline::graph::{GraphSettings, Limits, Shard};
use faultline::loadgen::{Generator, SpanShape};
use faultline::receivers::{otlp_fast, otlp_proto, Batch};

/// The binary's allocator (see `src/main.rs`), tuned as `main` tunes it
/// (at the start of [`decode_aggregate`]), so the figure is the one
/// `faultline serve` gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BASE_MS: u64 = 1_700_000_000_000;
const STEP_MS: u64 = 10;
const TICK_MS: u64 = 100;

/// An endless supply of encoded requests with fresh ids and advancing times.
struct Feed {
    generator: Generator,
    at_ms: u64,
}

impl Feed {
    fn new(shape: &SpanShape) -> Feed {
        Feed {
            generator: Generator::new(shape.clone(), 1),
            at_ms: BASE_MS,
        }
    }

    fn next(&mut self) -> (Vec<u8>, u64) {
        self.at_ms += STEP_MS;
        let request = self.generator.request(self.at_ms * 1_000_000);
        (prost::Message::encode_to_vec(&request), self.at_ms)
    }
}

/// One aggregation shard on the feed's clock.
struct Aggregator {
    shard: Shard,
    ticked_ms: u64,
}

impl Aggregator {
    fn new() -> Aggregator {
        let settings = GraphSettings {
            shards: 1,
            ..GraphSettings::default()
        };
        Aggregator {
            shard: Shard::new(Arc::new(Limits::new(settings))),
            ticked_ms: BASE_MS,
        }
    }

    fn ingest(&mut self, batch: &Batch, now_ms: u64) {
        batch
            .spans
            .iter()
            .for_each(|s| self.shard.ingest(s, now_ms));
        if now_ms >= self.ticked_ms + TICK_MS {
            self.shard.tick(now_ms);
            self.ticked_ms = now_ms;
        }
    }
}

fn decode_aggregate(c: &mut Criterion) {
    faultline::memory_limiter::tune_allocator();
    let shape = SpanShape::default();
    let mut group = c.benchmark_group("decode_aggregate");
    group.throughput(Throughput::Elements(shape.batch as u64));

    let (mut feed, mut graph) = (Feed::new(&shape), Aggregator::new());
    group.bench_function("fast_path", |b| {
        b.iter_batched(
            || feed.next(),
            |(body, now)| {
                let batch = otlp_fast::decode(&body).expect("valid");
                graph.ingest(&batch, now);
                (body, batch)
            },
            BatchSize::SmallInput,
        )
    });

    let (mut feed, mut graph) = (Feed::new(&shape), Aggregator::new());
    group.bench_function("prost_path", |b| {
        b.iter_batched(
            || feed.next(),
            |(body, now)| {
                let request = otlp_proto::decode_request(&body).expect("valid");
                let batch = otlp_proto::to_batch(request);
                graph.ingest(&batch, now);
                (body, batch)
            },
            BatchSize::SmallInput,
        )
    });

    let mut feed = Feed::new(&shape);
    let bodies: Vec<Vec<u8>> = (0..64).map(|_| feed.next().0).collect();
    let mut i = 0;
    group.bench_function("decode_fast", |b| {
        b.iter(|| {
            i += 1;
            otlp_fast::decode(&bodies[i % bodies.len()]).expect("valid")
        })
    });
    let mut i = 0;
    group.bench_function("decode_prost", |b| {
        b.iter(|| {
            i += 1;
            let request = otlp_proto::decode_request(&bodies[i % bodies.len()]).expect("valid");
            otlp_proto::to_batch(request)
        })
    });
    group.finish();
}

criterion_group!(benches, decode_aggregate);
criterion_main!(benches);
