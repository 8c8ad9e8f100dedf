//! decode + aggregate in the steady state, without a benchmark harness: the
//! figure to read next to `decode_aggregate`, and the program to profile.
//!
//! Requests of the standard shape (5 services, 10 attributes, 512 spans)
//! are generated up front — so the profile shows faultline, not the load
//! generator — with fresh trace ids and a clock that moves 10 ms per
//! request. One shard then decodes and aggregates them, ticking every
//! 100 ms of that clock: windows close, pairs settle and traces are read
//! as they would be live. The first third of the requests warms up.
//!
//! Each request is copied into a receive buffer (untimed) before it is
//! decoded, as a socket read leaves it in the cache (see [`arrive`]).
//!
//! Run: `cargo bench --bench steady_state` (prints spans/s per stage), or
//! `benches/profile.sh` for the callgrind profile of the same loop.
//! `STEADY_REQUESTS` sets how many requests (default 600: 307 200 spans,
//! 6 s of simulated time, so traces go quiet and are read).
//!
//! Timings on a shared VM move by a quarter from run to run; the cycles the
//! loop itself spent move far less (a stolen or slower second is not counted
//! as cycles). To count only the loop, not the request generation, run it
//! under `perf stat` with counting off and let the bench switch it on:
//!
//! ```text
//! mkfifo /tmp/ctl /tmp/ack
//! STEADY_PERF_CONTROL=/tmp/ctl STEADY_REQUESTS=3000 taskset -c 1 \
//!   perf stat -e cycles:u,instructions:u -D -1 --control fifo:/tmp/ctl,/tmp/ack <bench binary>
//! ```

use std::sync::Arc;
use std::time::Instant;

use faultline::graph::{GraphSettings, Limits, Shard};
use faultline::loadgen::{Generator, SpanShape};
use faultline::receivers::otlp_fast;

/// The binary's allocator (see `src/main.rs`), tuned as `main` tunes it,
/// so the figure is the one `faultline serve` gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BASE_MS: u64 = 1_700_000_000_000;
const STEP_MS: u64 = 10;
const TICK_MS: u64 = 100;

fn main() {
    faultline::memory_limiter::tune_allocator();
    let requests: usize = std::env::var("STEADY_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let shape = SpanShape::default();
    let mut generator = Generator::new(shape.clone(), 7);
    let bodies: Vec<(Vec<u8>, u64)> = (1..=requests as u64)
        .map(|i| {
            let at_ms = BASE_MS + i * STEP_MS;
            let request = generator.request(at_ms * 1_000_000);
            (prost::Message::encode_to_vec(&request), at_ms)
        })
        .collect();
    let warm = requests / 3;
    let settings = GraphSettings {
        shards: 1,
        ..GraphSettings::default()
    };
    let mut shard = Shard::new(Arc::new(Limits::new(settings)));
    let cold = std::env::var_os("STEADY_COLD_BODIES").is_some();
    let mut arrived: Vec<u8> = Vec::new();
    let perf = PerfControl::open();
    let mut ticked = BASE_MS;
    let (mut decode_s, mut total_s, mut spans) = (0.0, 0.0, 0usize);
    for (i, (body, now)) in bodies.iter().enumerate() {
        let body = if cold {
            body.as_slice()
        } else {
            arrive(body, &mut arrived)
        };
        let t0 = Instant::now();
        let batch = otlp_fast::decode(body).expect("generated requests are valid");
        let t1 = Instant::now();
        batch.spans.iter().for_each(|s| shard.ingest(s, *now));
        if *now >= ticked + TICK_MS {
            shard.tick(*now);
            ticked = *now;
        }
        // Handed back for the next request's decoding, as the shards do.
        faultline::model::buffers::give(batch.spans);
        let t2 = Instant::now();
        if i >= warm {
            decode_s += (t1 - t0).as_secs_f64();
            total_s += (t2 - t0).as_secs_f64();
            spans += shape.batch;
        }
    }
    drop(perf);
    let rate = |s: f64| spans as f64 / s / 1e3;
    println!(
        "steady_state: {spans} spans after {warm} warm-up requests; decode {:.0} k spans/s, \
         decode+aggregate {:.0} k spans/s, aggregate alone {:.0} k spans/s",
        rate(decode_s),
        rate(total_s),
        rate(total_s - decode_s)
    );
}

/// Copies a request into the receive buffer, untimed, as the receiver's
/// socket reads do just before it decodes. Why: the requests are generated
/// up front, hundreds of MB of them, so each is read back from memory; in
/// `faultline serve` a request's bytes were just written into its buffer
/// and sit in the cache. Timing the cold read charged the decoder's first
/// pass over each request (`count_spans`, 14% of the loop's cache misses)
/// with a cost the server does not pay there (that pass now runs only for
/// a request larger than its thread's last one). `STEADY_COLD_BODIES=1`
/// decodes the generated requests in place, as this bench did before.
fn arrive<'b>(body: &[u8], buffer: &'b mut Vec<u8>) -> &'b [u8] {
    buffer.clear();
    buffer.extend_from_slice(body);
    buffer
}

/// `perf stat --control`'s FIFO, named by `STEADY_PERF_CONTROL`: counting is
/// switched on while this lives (see the module docs).
struct PerfControl(Option<std::fs::File>);

impl PerfControl {
    fn open() -> PerfControl {
        let Some(path) = std::env::var_os("STEADY_PERF_CONTROL") else {
            return PerfControl(None);
        };
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("STEADY_PERF_CONTROL {path:?}: {e}"));
        std::io::Write::write_all(&mut fifo, b"enable\n").expect("perf control FIFO");
        PerfControl(Some(fifo))
    }
}

impl Drop for PerfControl {
    fn drop(&mut self) {
        if let Some(fifo) = &mut self.0 {
            let _ = std::io::Write::write_all(fifo, b"disable\n");
        }
    }
}
