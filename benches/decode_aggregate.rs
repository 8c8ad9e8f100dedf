//! decode + aggregate on one core: the spans/s figures the README reports.
//!
//! Input: the standard shape (5 services, 10 attributes, ~300-byte spans,
//! 512 spans per request), encoded once. Each iteration decodes a request
//! and folds it into the graph, by the fast path (`otlp_fast`: wire bytes
//! straight to spans) and by the prost path (`otlp_proto`: the generated
//! message tree, then spans). The `decode_*` benches leave the graph out,
//! so the two figures together say where the time goes.
//!
//! Run: `cargo bench --bench decode_aggregate`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use faultline::graph::{GraphSettings, OfflineGraph};
use faultline::loadgen::{Generator, SpanShape};
use faultline::receivers::{otlp_fast, otlp_proto};

fn bodies(shape: &SpanShape) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(shape.clone(), 1);
    (0..64)
        .map(|i| {
            prost::Message::encode_to_vec(
                &generator.request(1_700_000_000_000_000_000 + i * 1_000_000_000),
            )
        })
        .collect()
}

fn decode_aggregate(c: &mut Criterion) {
    let shape = SpanShape::default();
    let bodies = bodies(&shape);
    let mut group = c.benchmark_group("decode_aggregate");
    group.throughput(Throughput::Elements(shape.batch as u64));

    let mut graph = OfflineGraph::new(GraphSettings::default());
    let mut i = 0;
    group.bench_function("fast_path", |b| {
        b.iter(|| {
            let batch = otlp_fast::decode(&bodies[i % bodies.len()]).expect("valid");
            graph.ingest(&batch.spans);
            i += 1;
        })
    });

    let mut graph = OfflineGraph::new(GraphSettings::default());
    let mut i = 0;
    group.bench_function("prost_path", |b| {
        b.iter(|| {
            let request = otlp_proto::decode_request(&bodies[i % bodies.len()]).expect("valid");
            graph.ingest(&otlp_proto::to_batch(request).spans);
            i += 1;
        })
    });

    let mut i = 0;
    group.bench_function("decode_fast", |b| {
        b.iter(|| {
            let batch = otlp_fast::decode(&bodies[i % bodies.len()]).expect("valid");
            i += 1;
            batch
        })
    });

    let mut i = 0;
    group.bench_function("decode_prost", |b| {
        b.iter(|| {
            let request = otlp_proto::decode_request(&bodies[i % bodies.len()]).expect("valid");
            i += 1;
            otlp_proto::to_batch(request)
        })
    });
    group.finish();
}

criterion_group!(benches, decode_aggregate);
criterion_main!(benches);
