//! Allocations per span in the steady state, counted by a global allocator.
//!
//! The issue asks for no allocation per span once the collector is warm;
//! this says how far each stage is from that. It feeds one aggregation shard
//! the standard shape (5 services, 10 attributes, 512-span requests) on a
//! synthetic clock — windows close and traces expire as they would live —
//! warms up for 200 requests, then counts over the next 200:
//!
//! * `decode`: the bytes to a `Batch` (fast path, then prost for reference);
//! * `aggregate`: `Shard::ingest` of those spans, plus the ticks.
//!
//! Run: `cargo bench --bench allocations`. It prints one line per stage.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use faultline::graph::{GraphSettings, Limits, Shard};
use faultline::loadgen::{Generator, SpanShape};
use faultline::model::Span;
use faultline::receivers::{otlp_fast, otlp_proto, Batch};

/// Counts every allocation and reallocation (a `realloc` that moves is an
/// allocation as far as the hot path is concerned).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counters() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

/// Allocations and bytes per span spent in `f` over `spans` spans.
fn per_span(spans: u64, f: impl FnOnce()) -> (f64, f64) {
    let (a0, b0) = counters();
    f();
    let (a1, b1) = counters();
    (
        (a1 - a0) as f64 / spans as f64,
        (b1 - b0) as f64 / spans as f64,
    )
}

const WARM_UP: usize = 200;
const MEASURED: usize = 200;
/// Simulated time between requests: 10 ms, so a 1 s window closes every
/// 100 requests and traces go idle (2 s) and are read while measuring.
const STEP_MS: u64 = 10;
const BASE_MS: u64 = 1_700_000_000_000;

fn main() {
    let shape = SpanShape::default();
    let mut generator = Generator::new(shape.clone(), 1);
    let bodies: Vec<Vec<u8>> = (0..WARM_UP + MEASURED)
        .map(|i| {
            let ms = BASE_MS + i as u64 * STEP_MS;
            prost::Message::encode_to_vec(&generator.request(ms * 1_000_000))
        })
        .collect();
    let settings = GraphSettings {
        shards: 1,
        ..GraphSettings::default()
    };
    let mut shard = Shard::new(Arc::new(Limits::new(settings)));
    let mut tick_at = BASE_MS;
    let mut feed = |shard: &mut Shard, i: usize, spans: &[Span]| {
        let now = BASE_MS + i as u64 * STEP_MS;
        spans.iter().for_each(|s| shard.ingest(s, now));
        if now >= tick_at + 100 {
            shard.tick(now);
            tick_at = now;
        }
    };
    for (i, body) in bodies.iter().enumerate().take(WARM_UP) {
        let batch = otlp_fast::decode(body).expect("valid");
        feed(&mut shard, i, &batch.spans);
    }
    let measured = &bodies[WARM_UP..];
    let spans = (MEASURED * shape.batch) as u64;

    let mut batches: Vec<Batch> = Vec::with_capacity(MEASURED);
    let fast = per_span(spans, || {
        for body in measured {
            batches.push(otlp_fast::decode(body).expect("valid"));
        }
    });
    let aggregate = per_span(spans, || {
        for (i, batch) in batches.iter().enumerate() {
            feed(&mut shard, WARM_UP + i, &batch.spans);
        }
    });
    drop(batches);
    let mut batches: Vec<Batch> = Vec::with_capacity(MEASURED);
    let prost = per_span(spans, || {
        for body in measured {
            let request = otlp_proto::decode_request(body).expect("valid");
            batches.push(otlp_proto::to_batch(request));
        }
    });
    drop(batches);

    println!(
        "allocations per span, steady state ({} spans of the standard shape):",
        spans
    );
    let line = |what: &str, (a, b): (f64, f64)| {
        println!("  {what:<28} {a:>7.3} allocations/span  {b:>8.1} bytes/span");
    };
    line("decode, fast path", fast);
    line("decode, prost path", prost);
    line("aggregate (Shard::ingest)", aggregate);
    line(
        "fast decode + aggregate",
        (fast.0 + aggregate.0, fast.1 + aggregate.1),
    );
}
