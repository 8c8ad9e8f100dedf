//! Span vectors handed back from the shards to the decoder, for reuse.
//!
//! Why: a decoded request of 512 spans is one vector of about 256 KB,
//! allocated on a receiver's thread and freed on a shard's. The allocator
//! (mimalloc) takes such a block back into the receiver's heap only later,
//! and in the meantime served new requests from fresh pages, which stayed
//! in RSS: peak RSS at full load read 65.0–74.4 MiB, against 52.8–57.7 MiB
//! with the vectors passed back (`benches/memory.sh`, three pairs).
//! Passing the emptied vectors back keeps the same few in circulation.
//!
//! One lock per request, not per span, and the two sides rarely meet.

use parking_lot::Mutex;

use super::Span;

/// Vectors kept at most: enough to cover the shard queue's swing at full
/// load, few enough that an idle collector holds only a few MiB of them.
const KEPT: usize = 16;
/// A vector with room for more spans is freed, not kept, so what waits is
/// at most 16 × 1 024 spans of about 500 bytes: 8 MiB. SDK exporters send
/// 512 spans a request by default (4 MiB kept at most).
const MAX_KEPT_SPANS: usize = 1_024;

/// The process's pool, shared by the fast decoder and the shards.
static SPARE: SpanVecs = SpanVecs::new();

/// An empty vector with room for `spans` spans, from the process's pool.
pub fn take(spans: usize) -> Vec<Span> {
    SPARE.take(spans)
}

/// Hands a vector back to the process's pool once its spans are processed.
pub fn give(spans: Vec<Span>) {
    SPARE.give(spans)
}

/// Emptied span vectors waiting for reuse.
pub struct SpanVecs {
    kept: Mutex<Vec<Vec<Span>>>,
}

impl SpanVecs {
    pub const fn new() -> SpanVecs {
        SpanVecs {
            kept: Mutex::new(Vec::new()),
        }
    }

    /// An empty vector with room for `spans` spans, reused when the one
    /// waiting is that large.
    pub fn take(&self, spans: usize) -> Vec<Span> {
        // Popped on its own line, so the lock is not held while a vector
        // is allocated or a too-small one freed.
        let waiting = self.kept.lock().pop();
        match waiting {
            Some(v) if v.capacity() >= spans => v,
            // Too small: growing it would copy its old bytes for nothing.
            _ => Vec::with_capacity(spans),
        }
    }

    /// Keeps an emptied vector for reuse. The spans are dropped here, on
    /// the caller's thread, before the lock is taken.
    pub fn give(&self, mut spans: Vec<Span>) {
        spans.clear();
        if spans.capacity() == 0 || spans.capacity() > MAX_KEPT_SPANS {
            return;
        }
        let mut kept = self.kept.lock();
        if kept.len() < KEPT {
            kept.push(spans);
        }
    }

    /// Vectors waiting now.
    pub fn len(&self) -> usize {
        self.kept.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SpanVecs {
    fn default() -> Self {
        SpanVecs::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_given_back_are_reused_within_bounds() {
        let pool = SpanVecs::new();
        let v: Vec<Span> = Vec::with_capacity(512);
        let at = v.as_ptr();
        pool.give(v);
        let again = pool.take(300);
        assert_eq!((again.as_ptr(), again.capacity()), (at, 512));
        let fresh = pool.take(300);
        assert_ne!(fresh.as_ptr(), at, "the pool was empty");
        // Too small for what is asked: a new one, and the small one goes.
        pool.give(again);
        let big = pool.take(1_000);
        assert!(big.capacity() >= 1_000 && big.as_ptr() != at);
        assert!(pool.is_empty());
        // Unusually large vectors are not kept, and at most KEPT are.
        pool.give(Vec::with_capacity(MAX_KEPT_SPANS + 1));
        assert!(pool.is_empty());
        (0..KEPT + 4).for_each(|_| pool.give(Vec::with_capacity(8)));
        assert_eq!(pool.len(), KEPT);
    }
}
