//! The LLM path against a local server that answers like the OpenAI API:
//! a good answer merged, bad names rejected, malformed answers, errors and
//! silence falling back to the rules.

use std::time::{Duration, Instant};

use faultline::graph::partial::EdgeKind;
use faultline::operators::Target;
use faultline::scenarios::{
    generate_from_doc, generate_from_doc_with_llm, llm, FaultKind, GraphDoc, LlmReport,
    LlmSettings, ScenarioSettings, Source,
};
use serde_json::{json, Value};

use super::{find, stub, workload};

/// The workload's graph document and hotspots, for the async tests.
fn doc_and_hotspots() -> (GraphDoc, Vec<faultline::operators::Hotspot>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (view, hotspots) = workload::import(&workload::write(dir.path()));
    (
        GraphDoc::from_view(&view).unwrap(),
        hotspots,
        serde_json::to_value(&view).unwrap(),
    )
}

fn llm_settings(url: String, timeout: Duration) -> ScenarioSettings {
    ScenarioSettings {
        max_scenarios: 100,
        max_per_target: 10,
        llm: Some(LlmSettings {
            url,
            model: "test-model".into(),
            api_key: Some("test-key".into()),
            timeout,
            ..LlmSettings::default()
        }),
        ..ScenarioSettings::default()
    }
}

#[tokio::test]
async fn a_good_llm_answer_is_merged_and_bad_names_are_rejected() {
    let answer = json!({"scenarios": [
        {"title": "Jittery orders database", "rationale": "orders-db sits on every checkout",
         "target": {"type": "edge", "source": "checkout", "target": "orders-db"},
         "fault": {"kind": "latency_jitter", "params": {"latency_ms": 120, "jitter_ms": 60}}},
        {"target": {"type": "edge", "source": "checkout", "target": "inventory"},
         "fault": {"kind": "latency", "params": {"latency_ms": 500}}},
        {"target": {"type": "edge", "source": "checkout", "target": "payments"},
         "fault": {"kind": "meteor_strike"}},
        {"target": {"type": "destination", "name": "order-events"}, "fault": {"kind": "slow_consumer"}},
    ]});
    let (addr, seen) = stub::openai(stub::Answer::Content(answer.to_string())).await;
    let (doc, hotspots, _) = doc_and_hotspots();
    let settings = llm_settings(format!("http://{addr}"), Duration::from_secs(10));
    let out = generate_from_doc_with_llm(&doc, &hotspots, &[], &settings).await;

    let LlmReport::Merged { accepted, rejected } = &out.llm else {
        panic!("not merged: {:?}", out.llm);
    };
    assert_eq!(*accepted, 2);
    let reasons: Vec<(usize, &str)> = rejected
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].0 == 1 && reasons[0].1.contains("unknown service \"inventory\""),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == 2
            && reasons[1]
                .1
                .contains("unknown fault kind \"meteor_strike\""),
        "{reasons:?}"
    );

    let jitter = out
        .scenarios
        .iter()
        .find(|s| s.source == Source::Llm)
        .expect("the LLM's scenario is kept");
    assert_eq!(jitter.title, "Jittery orders database");
    assert_eq!(
        jitter.target,
        Target::edge("checkout", "orders-db", EdgeKind::Database)
    );
    assert_eq!(jitter.fault.params.jitter_ms, Some(60));
    assert_eq!(jitter.evidence.rule, "llm");
    // The LLM's slow consumer is the rules' one (same id): kept once, as the rules'.
    let consumers: Vec<_> = out
        .scenarios
        .iter()
        .filter(|s| s.fault.kind == FaultKind::SlowConsumer)
        .collect();
    assert_eq!(consumers.len(), 1);
    assert_eq!(consumers[0].source, Source::Rules);
    assert!(find(
        &out.scenarios,
        FaultKind::RetryStorm,
        "edge:checkout->payments"
    )
    .is_some());

    let seen = seen.lock().unwrap();
    let (auth, body) = &seen[0];
    assert_eq!(auth, "Bearer test-key");
    assert_eq!(body["model"], "test-model");
    let prompt = body["messages"][1]["content"].as_str().unwrap();
    for want in [
        "edge:checkout->payments",
        "Error patterns",
        "order-events",
        "retry_storm: error_percent",
    ] {
        assert!(prompt.contains(want), "prompt lacks {want}:\n{prompt}");
    }
}

#[tokio::test]
async fn a_malformed_llm_answer_falls_back_to_rules() {
    let (addr, _) = stub::openai(stub::Answer::Content(
        "You should break the database.".into(),
    ))
    .await;
    let (doc, hotspots, _) = doc_and_hotspots();
    let settings = llm_settings(format!("http://{addr}/v1"), Duration::from_secs(10));
    let out = generate_from_doc_with_llm(&doc, &hotspots, &[], &settings).await;
    let LlmReport::FellBack { reason } = &out.llm else {
        panic!("did not fall back: {:?}", out.llm);
    };
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(
        out.scenarios,
        generate_from_doc(&doc, &hotspots, &[], &settings)
    );
}

#[tokio::test]
async fn a_silent_llm_times_out_and_falls_back_to_rules() {
    let (addr, seen) = stub::openai(stub::Answer::Hang).await;
    let (doc, hotspots, _) = doc_and_hotspots();
    let settings = llm_settings(format!("http://{addr}"), Duration::from_millis(300));
    let started = Instant::now();
    let out = generate_from_doc_with_llm(&doc, &hotspots, &[], &settings).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the request reached the server"
    );
    let LlmReport::FellBack { reason } = &out.llm else {
        panic!("did not fall back: {:?}", out.llm);
    };
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(
        out.scenarios,
        generate_from_doc(&doc, &hotspots, &[], &settings)
    );
}

#[tokio::test]
async fn an_llm_http_error_falls_back_to_rules() {
    let (addr, _) = stub::openai(stub::Answer::Fail).await;
    let (doc, hotspots, _) = doc_and_hotspots();
    let settings = llm_settings(
        format!("http://{addr}/v1/chat/completions"),
        Duration::from_secs(10),
    );
    let out = generate_from_doc_with_llm(&doc, &hotspots, &[], &settings).await;
    assert!(
        matches!(&out.llm, LlmReport::FellBack { reason } if reason.contains("HTTP 500") && reason.contains("overloaded")),
        "{:?}",
        out.llm
    );
    assert!(!out.scenarios.is_empty());
}

#[test]
fn llm_answers_are_parsed_strictly() {
    let bad = json!({"choices": [{"message": {"content": "{\"scenarios\": 3}"}}]}).to_string();
    assert!(matches!(
        llm::parse_answer(&bad),
        Err(llm::LlmError::Malformed(_))
    ));
}
