//! The same traces exported as OTLP JSON, Jaeger JSON and Zipkin v2 JSON give
//! the same graph (fixtures written by `tests/fixtures/make_formats.py`).

use std::path::PathBuf;

use faultline::cli::analyze::analyze;
use faultline::graph::GraphSettings;

fn graph_of(file: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(file);
    let analysis = analyze(&[path], GraphSettings::default()).expect("fixture analyzes");
    assert_eq!(analysis.files[0].rejected, 0, "{file}");
    assert_eq!(analysis.files[0].spans, 25, "{file}");
    let mut doc = serde_json::to_value(&analysis.graph).unwrap();
    // Only these differ between runs: when the document was made.
    doc.as_object_mut().unwrap().remove("generated_at");
    doc.as_object_mut().unwrap().remove("window");
    doc
}

fn edge<'a>(g: &'a serde_json::Value, s: &str, t: &str) -> &'a serde_json::Value {
    g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == s && e["target"] == t)
        .unwrap_or_else(|| panic!("no edge {s} -> {t}"))
}

#[test]
fn every_format_gives_the_same_graph() {
    let otlp = graph_of("shop.otlp.json");
    let jaeger = graph_of("shop.jaeger.json");
    let zipkin = graph_of("shop.zipkin.json");
    assert_eq!(otlp, jaeger, "OTLP vs Jaeger");
    // Zipkin v2 has no resource attributes, so no Kubernetes identity.
    assert_eq!(without_k8s(otlp), zipkin, "OTLP vs Zipkin");
}

fn without_k8s(mut doc: serde_json::Value) -> serde_json::Value {
    for node in doc["nodes"].as_array_mut().unwrap() {
        assert!(node["k8s_namespace"].is_string() || node["kind"] != "service");
        node["k8s_namespace"] = serde_json::Value::Null;
        node["k8s_deployment"] = serde_json::Value::Null;
    }
    doc
}

#[test]
fn the_shop_graph_has_the_documented_edges() {
    let g = graph_of("shop.otlp.json");
    let expected = [
        ("frontend", "checkout", "rpc", 3, 0),
        ("checkout", "payments", "rpc", 3, 1),
        ("checkout", "orders", "database", 4, 0),
        ("checkout", "notifier", "messaging", 2, 0),
        ("frontend", "geo-api", "external", 2, 0),
        ("user", "frontend", "external", 3, 0),
    ];
    assert_eq!(g["edges"].as_array().unwrap().len(), expected.len());
    for (s, t, kind, calls, errors) in expected {
        let e = edge(&g, s, t);
        assert_eq!(
            (
                e["kind"].as_str().unwrap(),
                e["calls"].as_u64().unwrap(),
                e["errors"].as_u64().unwrap()
            ),
            (kind, calls, errors),
            "{s} -> {t}"
        );
    }
    // checkout -> payments: client 40 / 150 / 25 ms, so the mean is 71.67 ms.
    let mean = edge(&g, "checkout", "payments")["latency_ms"]["mean"]
        .as_f64()
        .unwrap();
    assert!((mean - 215.0 / 3.0).abs() < 0.01, "{mean}");
    // Consumers start after the producer ends: the queue time is known.
    assert!(
        edge(&g, "checkout", "notifier")["queue_latency_ms"]["mean"]
            .as_f64()
            .unwrap()
            >= 0.0
    );
    let frontend = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "frontend")
        .unwrap();
    assert_eq!(
        frontend["fan_out"], 5,
        "checkout, payments, orders, notifier, geo-api"
    );
}
