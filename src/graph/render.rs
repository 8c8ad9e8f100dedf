//! The graph as Graphviz DOT and Mermaid, for docs, tickets and chat.

use std::fmt::Write;

use super::view::{EdgeView, GraphView};

fn label(e: &EdgeView) -> String {
    let p99 = e
        .latency_ms
        .map(|l| format!("{:.1}ms", l.p99))
        .unwrap_or_else(|| "-".into());
    format!(
        "{} calls, {:.1}% err, p99 {p99}",
        e.calls,
        e.error_rate * 100.0
    )
}

/// Escapes a string for a double-quoted DOT or Mermaid label.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "'")
}

pub fn dot(g: &GraphView) -> String {
    let mut out = String::from("digraph faultline {\n  rankdir=LR;\n");
    for n in &g.nodes {
        let shape = match n.kind {
            super::partial::NodeKind::Service => "box",
            super::partial::NodeKind::Database => "cylinder",
            super::partial::NodeKind::Messaging => "cds",
            super::partial::NodeKind::External => "ellipse",
        };
        let _ = writeln!(out, "  \"{}\" [shape={shape}];", quoted(&n.id));
    }
    for e in &g.edges {
        let color = if e.error_rate > 0.0 { "red" } else { "black" };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\", color={color}];",
            quoted(&e.source),
            quoted(&e.target),
            label(e)
        );
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(g: &GraphView) -> String {
    let mut out = String::from("flowchart LR\n");
    let id = |name: &str| {
        g.nodes
            .iter()
            .position(|n| n.id == name)
            .unwrap_or(usize::MAX)
    };
    for (i, n) in g.nodes.iter().enumerate() {
        let name = quoted(&n.id);
        let shape = match n.kind {
            super::partial::NodeKind::Database => format!("[(\"{name}\")]"),
            super::partial::NodeKind::Messaging => format!("[/\"{name}\"/]"),
            super::partial::NodeKind::External => format!("((\"{name}\"))"),
            super::partial::NodeKind::Service => format!("[\"{name}\"]"),
        };
        let _ = writeln!(out, "  n{i}{shape}");
    }
    for e in &g.edges {
        let _ = writeln!(
            out,
            "  n{} -->|\"{}\"| n{}",
            id(&e.source),
            label(e),
            id(&e.target)
        );
    }
    out
}
