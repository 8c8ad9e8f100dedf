//! The shop's own counts of what happened — the ground truth a test or the
//! demo report compares faultline's view against.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters, shared by the services.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub orders_placed: AtomicU64,
    pub orders_failed: AtomicU64,
    pub payment_attempts: AtomicU64,
    pub charges: AtomicU64,
    pub retried_charges: AtomicU64,
    pub cache_calls: AtomicU64,
    pub db_calls: AtomicU64,
    pub messages_produced: AtomicU64,
    pub deliveries: AtomicU64,
    pub delivered: AtomicU64,
    pub redelivered: AtomicU64,
    pub dropped: AtomicU64,
}

/// A snapshot of [`RunningShop::stats`](super::RunningShop::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ShopStats {
    /// Orders charged and confirmed (one notification each).
    pub orders_placed: u64,
    /// Orders given up after every payment attempt failed.
    pub orders_failed: u64,
    /// Reserve + charge attempts orders made (retries included); each
    /// starts with a reservation.
    pub payment_attempts: u64,
    /// Charges orders sent to payments (an attempt whose reservation failed
    /// sends none).
    pub charges: u64,
    /// Of those, charges sent by a retry (`http.request.resend_count` > 0).
    pub retried_charges: u64,
    /// Calls inventory made to its cache.
    pub cache_calls: u64,
    /// Calls inventory made to its store.
    pub db_calls: u64,
    /// Messages published to `notifications`.
    pub messages_produced: u64,
    /// Delivery attempts by the notifier (each one a CONSUMER span).
    pub deliveries: u64,
    /// Messages whose email was sent.
    pub delivered: u64,
    /// Deliveries that failed and put the message back at the end of the queue.
    pub redelivered: u64,
    /// Messages given up after `max_deliveries` failed deliveries.
    pub dropped: u64,
}

impl ShopStats {
    /// Messages published but neither delivered nor dropped yet.
    pub fn pending_messages(&self) -> u64 {
        self.messages_produced
            .saturating_sub(self.delivered + self.dropped)
    }
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ShopStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ShopStats {
            orders_placed: get(&self.orders_placed),
            orders_failed: get(&self.orders_failed),
            payment_attempts: get(&self.payment_attempts),
            charges: get(&self.charges),
            retried_charges: get(&self.retried_charges),
            cache_calls: get(&self.cache_calls),
            db_calls: get(&self.db_calls),
            messages_produced: get(&self.messages_produced),
            deliveries: get(&self.deliveries),
            delivered: get(&self.delivered),
            redelivered: get(&self.redelivered),
            dropped: get(&self.dropped),
        }
    }
}
