//! decode + aggregate on one core: the spans/s figure the README reports.
//!
//! Input: the standard shape (5 services, 10 attributes, ~300-byte spans,
//! 512 spans per request), encoded once; each iteration decodes a request
//! with prost, converts it to the span model and folds it into the graph.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use faultline::graph::{GraphSettings, OfflineGraph};
use faultline::loadgen::{Generator, SpanShape};
use faultline::receivers::otlp_proto;

fn decode_aggregate(c: &mut Criterion) {
    let shape = SpanShape::default();
    let mut generator = Generator::new(shape.clone(), 1);
    let bodies: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            prost::Message::encode_to_vec(
                &generator.request(1_700_000_000_000_000_000 + i * 1_000_000_000),
            )
        })
        .collect();
    let mut group = c.benchmark_group("decode_aggregate");
    group.throughput(Throughput::Elements(shape.batch as u64));
    let mut graph = OfflineGraph::new(GraphSettings::default());
    let mut i = 0;
    group.bench_function("prost_path", |b| {
        b.iter(|| {
            let request = otlp_proto::decode_request(&bodies[i % bodies.len()]).expect("valid");
            graph.ingest(&otlp_proto::to_batch(request).spans);
            i += 1;
        })
    });
    group.finish();
}

criterion_group!(benches, decode_aggregate);
criterion_main!(benches);
