//! Network faults on one edge: latency (fixed and sized from the p99),
//! jitter, a hung dependency, reset connections, packet loss, a bandwidth
//! cap and the dependency down.

use super::{critical_share, edge_candidate, fault, nice, pct};
use crate::graph::partial::EdgeKind;
use crate::scenarios::build::Candidate;
use crate::scenarios::facts::Facts;
use crate::scenarios::graph::EdgeDoc;
use crate::scenarios::model::FaultKind;

/// Latency on a dependency: a fixed delay and one sized from the edge's own
/// p99. Fits best on a cache that is already slow, then on the edge where
/// the path's time goes.
pub(super) fn dependency_latency(facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    let s = facts.settings;
    let slow_cache = facts.is_cache(&e.target) && e.p99() >= s.slow_cache_ms;
    let critical = critical_share(facts, e);
    let (weight, fit) = if slow_cache {
        (1.0, 1.0)
    } else {
        (0.6, 0.3 + 0.7 * critical)
    };
    let why = if slow_cache {
        format!(
            "{} is a cache but its p99 is {:.1} ms (over {} ms): {} already waits on it, \
             and more delay shows whether it times out and falls back or queues behind it",
            e.target,
            e.p99(),
            s.slow_cache_ms,
            e.source
        )
    } else {
        format!(
            "{} -> {} carries {} calls and takes {:.0}% of its slowest path's time: delay \
             there shows whether {}'s timeouts and fallbacks hold",
            e.source,
            e.target,
            e.calls,
            critical * 100.0,
            e.source
        )
    };
    // The size from the p99 is a second opinion on the same fault, so it
    // fits a little less than the fixed one.
    let mut sizes = vec![(s.latency_ms, "dependency_latency", fit)];
    if e.p99() > 0.0 {
        let ms = nice(e.p99() * s.latency_p99_factor);
        sizes.push((ms, "dependency_latency_p99", fit * 0.9));
    }
    sizes
        .into_iter()
        .map(|(ms, rule, fit)| {
            edge_candidate(
                rule,
                e,
                fault(FaultKind::Latency, |p| p.latency_ms = Some(ms)),
                weight,
                fit,
            )
            .title(format!("{ms} ms latency on {} -> {}", e.source, e.target))
            .why(why.clone())
            .observed("critical_share", critical)
            .watch(&e.key(), "p99_ms", "the added delay shows here first")
            .watch(
                &e.key(),
                "timeout_rate",
                "callers giving up on the slow dependency",
            )
        })
        .collect()
}

/// Latency with jitter: variance is what breaks timeouts tuned to the tail
/// and unhedged callers; fits edges whose p99 already strays from the p50.
pub(super) fn latency_jitter(_facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    let spread = if e.p50() > 0.0 {
        e.p99() / e.p50()
    } else {
        1.0
    };
    let latency = nice(e.p99().max(20.0));
    let jitter = nice(latency as f64 / 2.0);
    let f = fault(FaultKind::LatencyJitter, |p| {
        p.latency_ms = Some(latency);
        p.jitter_ms = Some(jitter);
        p.correlation_percent = Some(25);
    });
    let fit = ((spread - 1.0) / 9.0).clamp(0.1, 1.0);
    vec![edge_candidate("latency_jitter", e, f, 0.5, fit)
        .title(format!(
            "{latency} ± {jitter} ms jitter on {} -> {}",
            e.source, e.target
        ))
        .why(format!(
            "the p99 of {} -> {} is {spread:.1}× its p50: callers already see uneven \
             latency, and jitter tests timeouts set near the tail",
            e.source, e.target
        ))
        .observed("p99_over_p50", spread)
        .watch(&e.key(), "p99_ms", "the spread shows in the tail")]
}

/// A hung dependency (accepts, never answers): the failure a missing
/// timeout turns into an outage.
pub(super) fn hang(facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    let fit = if e.timeouts > 0 {
        1.0
    } else if e.error_rate > 0.0 {
        0.6
    } else if e.kind == EdgeKind::External {
        0.5
    } else {
        0.3
    };
    let why = if e.timeouts > 0 {
        format!(
            "{} calls on {} -> {} already timed out",
            e.timeouts, e.source, e.target
        )
    } else {
        format!(
            "no call on {} -> {} ever timed out: a hung {} shows whether {} has a timeout at all",
            e.source, e.target, e.target, e.source
        )
    };
    let ms = facts.settings.hang_ms;
    vec![edge_candidate(
        "hang",
        e,
        fault(FaultKind::Timeout, |p| p.timeout_ms = Some(ms)),
        0.8,
        fit,
    )
    .title(format!(
        "{} hangs for {ms} ms ({} -> {})",
        e.target, e.source, e.target
    ))
    .why(why)
    .observed("timeouts", e.timeouts as f64)
    .watch(
        &e.key(),
        "timeout_rate",
        "calls that hit the caller's timeout",
    )
    .watch(
        &e.key(),
        "p99_ms",
        "how long callers hold on before giving up",
    )]
}

/// Errors on an edge suggest flaky connections; both connection faults fit
/// better the more calls already fail.
fn flaky_fit(e: &EdgeDoc) -> f64 {
    0.3 + 0.7 * (e.error_rate * 2.0 + e.timeouts as f64 / e.calls.max(1) as f64).min(1.0)
}

pub(super) fn connection_reset(facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    let share = facts.settings.error_percent;
    let f = fault(FaultKind::ResetPeer, |p| p.error_percent = Some(share));
    vec![edge_candidate("connection_reset", e, f, 0.5, flaky_fit(e))
        .title(format!(
            "{share}% of connections reset on {} -> {}",
            e.source, e.target
        ))
        .why(format!(
            "{} of calls on {} -> {} fail: resets test whether {} reconnects and retries \
             safely instead of surfacing every broken connection",
            pct(e.error_rate),
            e.source,
            e.target,
            e.source
        ))
        .watch(&e.key(), "error_rate", "resets the callers could not hide")]
}

pub(super) fn packet_loss(facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    let loss = facts.settings.loss_percent;
    let f = fault(FaultKind::DropConnections, |p| {
        p.loss_percent = Some(loss);
        p.correlation_percent = Some(25);
    });
    vec![edge_candidate("packet_loss", e, f, 0.5, flaky_fit(e))
        .title(format!(
            "{loss}% packet loss on {} -> {}",
            e.source, e.target
        ))
        .why(format!(
            "{} of calls on {} -> {} fail or time out: dropped packets stall connections \
             until TCP or the caller's timeout gives up",
            pct(e.error_rate),
            e.source,
            e.target
        ))
        .watch(&e.key(), "p99_ms", "retransmissions stretch the tail")
        .watch(&e.key(), "timeout_rate", "connections that never recover")]
}

/// A bandwidth cap only matters where calls spend their time on the wire:
/// the caller's time well above the callee's, or traffic leaving for an
/// outside peer.
pub(super) fn bandwidth(facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    let wire = match e.server_latency_ms {
        Some(server) if e.p50() > 0.0 => ((e.p50() - server.p50) / e.p50()).max(0.0),
        _ => 0.0,
    };
    let fit = if wire >= 0.3 {
        wire
    } else if e.kind == EdgeKind::External {
        0.3
    } else {
        return Vec::new();
    };
    let rate = facts.settings.bandwidth_kbps;
    let f = fault(FaultKind::Bandwidth, |p| p.rate_kbps = Some(rate));
    vec![edge_candidate("bandwidth", e, f, 0.3, fit)
        .title(format!(
            "{rate} KB/s bandwidth on {} -> {}",
            e.source, e.target
        ))
        .why(format!(
            "{:.0}% of a call on {} -> {} is spent outside {} (on the wire or queued): \
             a thin pipe shows whether large payloads stall callers",
            wire * 100.0,
            e.source,
            e.target,
            e.target
        ))
        .observed("wire_share", wire)
        .watch(&e.key(), "p99_ms", "transfers slow down")]
}

/// A dependency down. Fits shared dependencies (one outage, many callers)
/// and ones never seen failing (the error path was never exercised).
/// Caches get the cache-degradation rule instead.
pub(super) fn dependency_down(facts: &Facts<'_>, e: &EdgeDoc) -> Vec<Candidate> {
    if facts.is_cache(&e.target) {
        return Vec::new();
    }
    let callers = facts
        .doc
        .edges
        .iter()
        .filter(|x| x.target == e.target)
        .count();
    let unexercised = if e.error_rate == 0.0 { 0.2 } else { 0.0 };
    let fit = (0.3 + 0.15 * callers as f64 + unexercised).min(1.0);
    vec![edge_candidate(
        "dependency_down",
        e,
        fault(FaultKind::Down, |_| {}),
        0.7,
        fit,
    )
    .title(format!("{} down for {}", e.target, e.source))
    .why(format!(
        "{} has {callers} caller(s) and {} of calls to it failed so far: with it \
             unreachable, {} must degrade instead of failing every request",
        e.target,
        pct(e.error_rate),
        e.source
    ))
    .observed("callers", callers as f64)
    .watch(
        &e.key(),
        "error_rate",
        "calls failing fast rather than hanging",
    )]
}
