//! Messaging destinations: what was produced, consumed, how long messages
//! waited, and whether one key's messages arrived out of order.
//!
//! Produced and consumed counts come from single PRODUCER and CONSUMER
//! spans; lag and order need the pair, so they are recorded when a
//! producer and its consumer meet in the pairing store.

use std::collections::HashMap;
use std::sync::Arc;

use super::stats::{Delivery, DestinationStats};
use super::view::DestinationView;

/// Counts deliveries whose message was produced before a message of the same
/// key that was consumed earlier. `last_produced` carries the latest
/// production time seen per (destination, key) across calls, so a live
/// reader can continue from one window into the next.
pub fn out_of_order(
    destination: &str,
    deliveries: &[Delivery],
    last_produced: &mut HashMap<(String, Option<Arc<str>>), u64>,
) -> u64 {
    let mut sorted: Vec<&Delivery> = deliveries.iter().collect();
    sorted.sort_by_key(|d| (d.consumed_ns, d.produced_ns));
    let mut count = 0;
    for d in sorted {
        let latest = last_produced
            .entry((destination.to_owned(), d.key.clone()))
            .or_insert(0);
        if d.produced_ns < *latest {
            count += 1;
        } else {
            *latest = d.produced_ns;
        }
    }
    count
}

pub fn destination_views(
    destinations: &super::partial::FastMap<Arc<str>, DestinationStats>,
) -> Vec<DestinationView> {
    let mut out: Vec<DestinationView> = destinations
        .iter()
        .map(|(name, d)| DestinationView {
            name: name.to_string(),
            system: d.system.as_deref().map(str::to_owned),
            produced: d.produced,
            consumed: d.consumed,
            producers: names(&d.producers),
            consumers: names(&d.consumers),
            in_flight: d.produced.saturating_sub(d.consumed),
            lag_ms: d.lag.summary(),
            out_of_order: out_of_order(name, &d.deliveries, &mut HashMap::new()),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn names(services: &[Arc<str>]) -> Vec<String> {
    let mut out: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(key: &str, produced: u64, consumed: u64) -> Delivery {
        Delivery {
            key: Some(key.into()),
            produced_ns: produced,
            consumed_ns: consumed,
        }
    }

    #[test]
    fn counts_reordering_per_key_only() {
        // Key a: produced 1, 2, 3 but consumed 1, 3, 2 → one out of order.
        // Key b interleaves with a without being out of order itself.
        let list = vec![
            d("a", 1, 10),
            d("b", 5, 11),
            d("a", 3, 12),
            d("a", 2, 13),
            d("b", 6, 14),
        ];
        let mut last = HashMap::new();
        assert_eq!(out_of_order("q", &list, &mut last), 1);
        // The carried state catches a late message in the next window.
        assert_eq!(out_of_order("q", &[d("b", 4, 20)], &mut last), 1);
    }
}
