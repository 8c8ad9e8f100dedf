//! The prompt: the graph summary, the hotspots and the error patterns, plus
//! the answer's schema. Bounded (a fixed number of lines per section) so a
//! large graph does not overflow the model's context.

use std::fmt::Write;

use crate::scenarios::facts::Facts;
use crate::scenarios::model::FaultKind;

pub const SYSTEM: &str = "You design fault-injection experiments for distributed systems. \
You answer with one JSON object and nothing else.";

const MAX_NODES: usize = 50;
const MAX_EDGES: usize = 100;
const MAX_DESTINATIONS: usize = 30;
const MAX_HOTSPOTS: usize = 10;

/// The user message asking for `n` scenarios.
pub fn user(facts: &Facts<'_>, n: usize) -> String {
    let mut p = String::new();
    let _ = writeln!(
        p,
        "Propose {n} failure scenarios for this system that unit and integration tests \
         would miss: failures between services. Use only the services, edges and \
         destinations listed below.\n"
    );
    schema(&mut p);
    graph(&mut p, facts);
    hotspots(&mut p, facts);
    errors(&mut p, facts);
    p
}

fn schema(p: &mut String) {
    p.push_str(
        "Answer with this JSON object:\n\
         {\"scenarios\": [{\"title\": string, \
         \"target\": {\"type\": \"edge\", \"source\": string, \"target\": string} \
         or {\"type\": \"destination\", \"name\": string}, \
         \"fault\": {\"kind\": string, \"params\": {name: integer}}, \
         \"rationale\": string}]}\n\nFault kinds and their params:\n",
    );
    for kind in FaultKind::ALL {
        let (required, optional) = kind.param_names();
        let _ = write!(p, "- {kind}: {}", required.join(", "));
        if !optional.is_empty() {
            let _ = write!(p, " (optional: {})", optional.join(", "));
        }
        p.push('\n');
    }
    p.push_str(
        "slow_consumer and reorder take a destination; every other kind takes an edge. \
         cpu_pressure stresses the edge's target; retry_storm needs a service as target; \
         cache_degradation needs a cache as target and takes latency_ms (slowed) or \
         loss_percent 100 (down). Times are ms, shares are percent, rate_kbps is KB/s.\n\n",
    );
}

fn graph(p: &mut String, facts: &Facts<'_>) {
    p.push_str("Nodes (id, kind, system, calls, error rate, p99 ms):\n");
    for n in facts.doc.nodes.iter().take(MAX_NODES) {
        let p99 = n.latency_ms.map_or(0.0, |l| l.p99);
        let system = n.system.as_deref().unwrap_or("-");
        let _ = writeln!(
            p,
            "- {} {:?} {system} calls={} error_rate={:.3} p99_ms={p99:.1}",
            n.id, n.kind, n.calls, n.error_rate
        );
    }
    p.push_str("\nEdges (source -> target, kind, calls, error rate, timeouts, retries, p99 ms):\n");
    let mut edges: Vec<_> = facts.doc.edges.iter().collect();
    edges.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.key().cmp(&b.key())));
    for e in edges.into_iter().take(MAX_EDGES) {
        let _ = writeln!(
            p,
            "- {} -> {} {:?} calls={} error_rate={:.3} timeouts={} retries={} p99_ms={:.1}",
            e.source,
            e.target,
            e.kind,
            e.calls,
            e.error_rate,
            e.timeouts,
            e.retries,
            e.p99()
        );
    }
    p.push_str("\nDestinations (name, system, produced, consumed, mean lag ms, out of order):\n");
    for d in facts.doc.destinations.iter().take(MAX_DESTINATIONS) {
        let _ = writeln!(
            p,
            "- {} {} produced={} consumed={} lag_ms={:.1} out_of_order={}",
            d.name,
            d.system.as_deref().unwrap_or("-"),
            d.produced,
            d.consumed,
            d.lag_mean(),
            d.out_of_order
        );
    }
}

fn hotspots(p: &mut String, facts: &Facts<'_>) {
    p.push_str("\nHotspots, riskiest first (target, score, why):\n");
    let mut list = facts.hotspots();
    list.sort_by(|a, b| a.rank.cmp(&b.rank).then(a.key.cmp(&b.key)));
    for h in list.into_iter().take(MAX_HOTSPOTS) {
        let why: Vec<&str> = h.components.iter().map(|c| c.why.as_str()).collect();
        let _ = writeln!(
            p,
            "{}. {} score={:.2}: {}",
            h.rank,
            h.key,
            h.score,
            why.join("; ")
        );
    }
}

fn errors(p: &mut String, facts: &Facts<'_>) {
    p.push_str("\nError patterns:\n");
    let mut any = false;
    for e in &facts.doc.edges {
        if e.errors == 0 && e.timeouts == 0 && e.retries == 0 {
            continue;
        }
        any = true;
        let _ = writeln!(
            p,
            "- {} -> {}: {:.1}% of calls failed, {} timed out, {} retries in {} attempts",
            e.source,
            e.target,
            e.error_rate * 100.0,
            e.timeouts,
            e.retries,
            e.attempts
        );
    }
    for d in facts
        .doc
        .destinations
        .iter()
        .filter(|d| d.in_flight > 0 || d.out_of_order > 0)
    {
        any = true;
        let _ = writeln!(
            p,
            "- {}: {} messages not consumed, {} out of order",
            d.name, d.in_flight, d.out_of_order
        );
    }
    if !any {
        p.push_str("- none seen\n");
    }
}
