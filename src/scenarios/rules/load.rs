//! Faults about load and queues: a retry storm against a service with a
//! store behind it, a degraded cache with fall-through to the database, a
//! slow consumer, reordered messages and CPU pressure.

use super::{edge_candidate, fault, nice, pct, points};
use crate::graph::partial::{EdgeKind, NodeKind};
use crate::operators::Target;
use crate::scenarios::build::Candidate;
use crate::scenarios::facts::Facts;
use crate::scenarios::graph::{DestinationDoc, EdgeDoc};
use crate::scenarios::model::FaultKind;

/// A retry storm: the callee failing part of its calls while callers retry,
/// against a service with a database or cache behind it, where retries
/// multiply into load on the store. Fits retries and errors already seen.
pub(super) fn retry_storm(facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    let stores = facts.stores_of(&e.target);
    if e.kind != EdgeKind::Rpc || !facts.is_service(&e.target) || stores.is_empty() {
        return Vec::new();
    }
    let amp = e.amplification();
    let fit = if e.retries > 0 || e.error_rate > 0.0 {
        (0.4 + (amp - 1.0) * 2.0 + e.error_rate).min(1.0)
    } else {
        0.2
    };
    let names: Vec<&str> = stores.iter().map(|s| s.target.as_str()).collect();
    let share = facts.settings.error_percent;
    let f = fault(FaultKind::RetryStorm, |p| p.error_percent = Some(share));
    let mut c = edge_candidate("retry_storm", e, f, 1.0, fit)
        .title(format!(
            "Retry storm against {} ({} -> {})",
            e.target, e.source, e.target
        ))
        .why(format!(
            "{} retried {} of {} calls to {} ({amp:.2} attempts per call) and {} failed; \
             {} sits in front of {}: failing {share}% of its calls shows whether retries \
             multiply into load on the store",
            e.source,
            e.retries,
            e.attempts,
            e.target,
            pct(e.error_rate),
            e.target,
            names.join(", ")
        ))
        .observed("retries", e.retries as f64)
        .observed("attempts", e.attempts as f64)
        .observed("retry_amplification", amp)
        .watch(&e.key(), "retries", "the retries themselves")
        .watch(&e.key(), "retry_amplification", "attempts per logical call")
        .watch(
            &e.key(),
            "error_rate",
            "failures the retries did not absorb",
        );
    for s in stores {
        c = c.watch(&s.key(), "p99_ms", "the load the storm puts on the store");
    }
    vec![c]
}

/// The cache edge slowed or gone while callers fall through to their
/// database: does the database absorb the misses?
pub(super) fn cache_degradation(facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    if !facts.is_cache(&e.target) {
        return Vec::new();
    }
    let fallback: Vec<&EdgeDoc> = facts
        .stores_of(&e.source)
        .into_iter()
        .filter(|s| !facts.is_cache(&s.target))
        .collect();
    let fit = if fallback.is_empty() { 0.6 } else { 1.0 };
    let behind = if fallback.is_empty() {
        format!(
            "no database was seen behind {}, so a cache outage is an outage",
            e.source
        )
    } else {
        let names: Vec<&str> = fallback.iter().map(|f| f.target.as_str()).collect();
        format!(
            "its callers fall through to {}, which must absorb the misses",
            names.join(", ")
        )
    };
    let system = facts
        .node(&e.target)
        .and_then(|n| n.system.clone())
        .unwrap_or_default();
    let slowed = nice(facts.settings.slow_cache_ms * 10.0);
    let variants = [
        (
            fault(FaultKind::CacheDegradation, |p| p.latency_ms = Some(slowed)),
            format!("slowed by {slowed} ms"),
        ),
        (
            fault(FaultKind::CacheDegradation, |p| p.loss_percent = Some(100)),
            "unreachable".to_owned(),
        ),
    ];
    variants
        .into_iter()
        .map(|(f, how)| {
            let mut c = edge_candidate("cache_degradation", e, f, 1.0, fit)
                .title(format!("Cache {} {how} for {}", e.target, e.source))
                .why(format!(
                    "{} reads the {system} cache {}; {behind}",
                    e.source, e.target
                ))
                .observed("fallback_stores", fallback.len() as f64)
                .watch(&e.key(), "error_rate", "cache calls failing");
            for s in &fallback {
                c = c
                    .watch(&s.key(), "p99_ms", "the database taking the misses")
                    .watch(&s.key(), "error_rate", "the database giving way");
            }
            c
        })
        .collect()
}

/// A slow consumer: a queue that already lags or backs up is one step from
/// unbounded depth.
pub(super) fn slow_consumer(facts: &Facts<'_>, d: &DestinationDoc) -> Vec<Candidate> {
    let consumers = facts.consumers(&d.name);
    let Some(consumer) = consumers.first() else {
        return Vec::new();
    };
    let s = facts.settings;
    let backlog = d.in_flight as f64 / d.produced.max(1) as f64;
    let lag = d.lag_mean();
    let fit = 0.2 + 0.4 * (lag / s.slow_queue_ms).min(1.0) + 0.4 * (backlog * 2.0).min(1.0);
    let ms = s.consumer_delay_ms;
    let target = Target::Destination {
        name: d.name.clone(),
    };
    let f = fault(FaultKind::SlowConsumer, |p| p.latency_ms = Some(ms));
    vec![Candidate::new("slow_consumer", target, f, points(1.0, fit))
        .title(format!(
            "Slow consumer on {} ({} +{ms} ms per message)",
            d.name, consumer.target
        ))
        .why(format!(
            "messages on {} wait {lag:.0} ms on average and {} of {} produced were not \
             consumed: {} already lags, and slowing it shows whether the depth stays \
             bounded and producers stay unaffected",
            d.name, d.in_flight, d.produced, consumer.target
        ))
        .observed("lag_ms", lag)
        .observed("produced", d.produced as f64)
        .observed("consumed", d.consumed as f64)
        .observed("in_flight", d.in_flight as f64)
        .watch(&d.key(), "queue_depth", "the backlog growing")
        .watch(&d.key(), "queue_lag_ms", "how long messages wait")]
}

/// Reordered messages: consumers that assume per-key order break quietly.
pub(super) fn reorder(facts: &Facts<'_>, d: &DestinationDoc) -> Vec<Candidate> {
    if facts.producers(&d.name).is_empty() {
        return Vec::new();
    }
    let fit = if d.out_of_order > 0 { 1.0 } else { 0.3 };
    let share = facts.settings.reorder_percent;
    let target = Target::Destination {
        name: d.name.clone(),
    };
    let f = fault(FaultKind::Reorder, |p| {
        p.reorder_percent = Some(share);
        p.latency_ms = Some(20);
        p.correlation_percent = Some(50);
    });
    vec![Candidate::new("reorder", target, f, points(0.8, fit))
        .title(format!("{share}% of messages reordered on {}", d.name))
        .why(format!(
            "{} deliveries on {} already arrived out of order per key: consumers that \
             assume order lose or double-apply updates",
            d.out_of_order, d.name
        ))
        .observed("out_of_order", d.out_of_order as f64)
        .watch(&d.key(), "out_of_order", "deliveries out of order per key")]
}

/// CPU pressure on the two busiest services: saturation shows first where
/// most calls land. The target is the busiest edge into the node.
pub(super) fn cpu_pressure(facts: &Facts<'_>) -> Vec<Candidate> {
    let services: Vec<_> = facts
        .doc
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Service && n.calls >= facts.settings.min_calls)
        .collect();
    let total: u64 = services.iter().map(|n| n.calls).sum();
    let mut busiest = services.clone();
    busiest.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.id.cmp(&b.id)));
    let s = facts.settings;
    busiest
        .into_iter()
        .take(2)
        .filter_map(|n| {
            let inbound = facts
                .doc
                .edges
                .iter()
                .filter(|e| e.target == n.id)
                .max_by(|a, b| a.calls.cmp(&b.calls).then(b.source.cmp(&a.source)))?;
            let share = n.calls as f64 / total.max(1) as f64;
            let f = fault(FaultKind::CpuPressure, |p| {
                p.cpu_load_percent = Some(s.cpu_load_percent);
                p.cpu_workers = Some(s.cpu_workers);
            });
            let c = Candidate::new(
                "cpu_pressure",
                inbound.target_ref(),
                f,
                points(0.4, 0.2 + share),
            )
            .title(format!("{}% CPU pressure on {}", s.cpu_load_percent, n.id))
            .why(format!(
                "{} serves {:.0}% of all service calls: CPU saturation shows there first",
                n.id,
                share * 100.0
            ))
            .observed("calls", n.calls as f64)
            .observed("call_share", share)
            .watch(&inbound.key(), "p99_ms", "the service slowing under load")
            .watch(
                &inbound.key(),
                "error_rate",
                "requests it drops or times out",
            );
            Some(c)
        })
        .collect()
}
