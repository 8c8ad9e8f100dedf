//! Scenario generation end to end: a workload with a slow cache, a flaky
//! payment dependency and a backed-up queue, through the offline import,
//! the hotspot ranking, the rules, the LLM adapter and every renderer.

#[path = "scenarios/crd.rs"]
mod crd;
#[path = "scenarios/llm_adapter.rs"]
mod llm_adapter;
#[path = "scenarios/renderers.rs"]
mod renderers;
#[path = "scenarios/stub.rs"]
mod stub;
#[path = "scenarios/workload.rs"]
mod workload;

use std::collections::BTreeSet;

use faultline::cli::scenarios::{self as cli, Input, Options};
use faultline::graph::GraphSettings;
use faultline::scenarios::render::{self, Format};
use faultline::scenarios::{generate, FaultKind, Scenario, ScenarioSet, ScenarioSettings, Source};

/// The workload, imported and ranked, with scenarios under `settings`.
fn scenarios_with(settings: &ScenarioSettings) -> Vec<Scenario> {
    let dir = tempfile::tempdir().unwrap();
    let (view, hotspots) = workload::import(&workload::write(dir.path()));
    generate(&view, &hotspots, &[], settings)
}

/// Every candidate the rules make (no cap), so renderers see every kind.
fn all_scenarios() -> Vec<Scenario> {
    let settings = ScenarioSettings {
        max_scenarios: 1_000,
        max_per_target: 1_000,
        ..ScenarioSettings::default()
    };
    scenarios_with(&settings)
}

fn find<'a>(list: &'a [Scenario], kind: FaultKind, key: &str) -> Option<&'a Scenario> {
    list.iter()
        .find(|s| s.fault.kind == kind && s.target.key() == key)
}

#[test]
fn top_scenarios_hit_the_slow_cache_the_flaky_payments_and_the_backed_up_queue() {
    let list = scenarios_with(&ScenarioSettings::default());
    let top = &list[..10.min(list.len())];
    let titles: Vec<&str> = top.iter().map(|s| s.title.as_str()).collect();

    let cache = find(top, FaultKind::Latency, "edge:checkout->redis-cart")
        .unwrap_or_else(|| panic!("no cache latency in the top 10: {titles:#?}"));
    assert!(cache.evidence.rule.starts_with("dependency_latency"));
    assert!(
        cache.evidence.why.contains("is a cache"),
        "{}",
        cache.evidence.why
    );
    assert!(cache.evidence.observed["p99_ms"] >= 300.0);
    assert_eq!(cache.inject.on.name, "checkout");
    // The edge's own hotspot is evidence (paths rank at half weight, so
    // the path through it may or may not make the top K).
    let edge_hotspot = cache
        .evidence
        .hotspots
        .iter()
        .find(|h| h.key == "edge:checkout->redis-cart");
    assert!(
        edge_hotspot.is_some(),
        "the cache edge's hotspot is evidence"
    );
    // Slowed and gone: both halves of cache degradation make the cut.
    let degraded = list
        .iter()
        .filter(|s| s.fault.kind == FaultKind::CacheDegradation)
        .count();
    assert_eq!(degraded, 2);
    assert_eq!(
        cache.inject.towards.as_ref().unwrap().system.as_deref(),
        Some("redis")
    );

    let storm = find(top, FaultKind::RetryStorm, "edge:checkout->payments")
        .unwrap_or_else(|| panic!("no retry storm in the top 10: {titles:#?}"));
    assert_eq!(storm.evidence.observed["retries"], 30.0);
    assert_eq!(storm.evidence.observed["retry_amplification"], 2.0);
    let hotspot = storm
        .evidence
        .hotspots
        .iter()
        .find(|h| h.key == "edge:checkout->payments")
        .expect("payments edge is a hotspot");
    assert!(hotspot
        .components
        .iter()
        .any(|c| c.name == "retry_amplification"));
    assert!(
        storm.evidence.why.contains("payments-db"),
        "{}",
        storm.evidence.why
    );
    assert!(storm
        .signals
        .iter()
        .any(|w| w.key == "edge:payments->payments-db"));

    let queue = find(top, FaultKind::SlowConsumer, "destination:order-events")
        .unwrap_or_else(|| panic!("no slow consumer in the top 10: {titles:#?}"));
    assert_eq!(queue.evidence.observed["in_flight"], 20.0);
    assert!(queue.evidence.observed["lag_ms"] >= 5_000.0);
    assert_eq!(queue.inject.on.name, "notifier");
    assert!(queue.signals.iter().any(|w| w.signal == "queue_depth"));
    assert_eq!(queue.hypothesis.queues, ["destination:order-events"]);

    // Ranked by priority, ranks 1..n, at most max_per_target per target.
    assert!(list.windows(2).all(|w| w[0].priority >= w[1].priority));
    assert!(list.iter().enumerate().all(|(i, s)| s.rank == i + 1));
    assert_eq!(list.len(), 20);
    for s in &list {
        let same = list.iter().filter(|o| o.target == s.target).count();
        assert!(same <= 3, "{} scenarios on {}", same, s.target.key());
    }
}

#[test]
fn the_same_input_gives_byte_identical_output() {
    let render_all = || {
        let list = scenarios_with(&ScenarioSettings::default());
        let mut out = vec![serde_json::to_string(&list).unwrap()];
        for format in Format::ALL {
            let r = render::render(format, &list, &ScenarioSettings::default()).unwrap();
            out.push(r.to_stream(format).unwrap());
        }
        out
    };
    let (first, second) = (render_all(), render_all());
    assert_eq!(first.len(), 7);
    for (a, b) in first.iter().zip(&second) {
        assert!(a == b, "outputs differ:\n{a}\n----\n{b}");
    }
}

#[test]
fn every_scenario_is_well_formed_and_the_catalog_is_covered() {
    let list = all_scenarios();
    let kinds: BTreeSet<FaultKind> = list.iter().map(|s| s.fault.kind).collect();
    assert_eq!(
        kinds,
        FaultKind::ALL.into_iter().collect(),
        "kinds the workload set off"
    );
    let ids: BTreeSet<&str> = list.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), list.len(), "ids are unique");
    for s in &list {
        s.fault.kind.check(&s.fault.params).unwrap();
        assert_eq!(s.id.len(), 12);
        assert!(!s.evidence.why.is_empty() && !s.title.is_empty(), "{s:?}");
        assert!(s.signals.iter().any(|w| w.signal == "time_to_recover"));
        assert_eq!(s.guardrails.entry.name, "frontend", "{}", s.title);
        assert!(s.guardrails.max_error_rate > s.guardrails.observed_error_rate);
        assert!(s.guardrails.max_p99_ms > s.guardrails.observed_p99_ms);
        assert_eq!(s.source, Source::Rules);
        let sum: f64 = s.evidence.points.values().sum();
        assert!(
            (sum - s.priority).abs() < 0.01,
            "priority is the sum of its points"
        );
    }
}

#[test]
fn scenarios_round_trip_through_json_and_yaml() {
    let set = ScenarioSet {
        scenarios: scenarios_with(&ScenarioSettings::default()),
    };
    let json = render::render(Format::Json, &set.scenarios, &ScenarioSettings::default()).unwrap();
    let back: ScenarioSet = serde_json::from_str(&json.files[0].content).unwrap();
    assert_eq!(back, set);
    let yaml = render::render(Format::Yaml, &set.scenarios, &ScenarioSettings::default()).unwrap();
    let back: ScenarioSet = serde_yaml_ng::from_str(&yaml.files[0].content).unwrap();
    assert_eq!(back, set);
}

#[tokio::test]
async fn server_and_files_give_the_same_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let file = workload::write(dir.path());
    let options = |input| Options {
        input,
        format: Format::Json,
        out: None,
        settings: ScenarioSettings::default(),
        graph: GraphSettings::default(),
    };
    let from_file = cli::run(options(Input::Files(vec![file.clone()])))
        .await
        .unwrap();
    let (view, hotspots) = workload::import(&file);
    let graph = serde_json::to_value(&view).unwrap();
    let addr = stub::faultline_api(
        graph.clone(),
        Some(serde_json::to_value(&hotspots).unwrap()),
    )
    .await;
    let from_server = cli::run(options(Input::Server(format!("http://{addr}/"))))
        .await
        .unwrap();
    assert!(from_file.stdout.contains("\"retry_storm\""));
    assert_eq!(from_file.stdout, from_server.stdout);
    assert_eq!(from_server.summary, "20 scenario(s)");
    // A server without /api/hotspots still gives scenarios, from the graph.
    let addr = stub::faultline_api(graph, None).await;
    let graph_only = cli::run(options(Input::Server(format!("http://{addr}"))))
        .await
        .unwrap();
    assert!(graph_only.stdout.contains("\"retry_storm\""));
    assert_ne!(graph_only.stdout, from_file.stdout, "no hotspot points");
    let down = cli::run(options(Input::Server("http://127.0.0.1:9".into()))).await;
    let message = format!("{:#}", down.err().expect("nothing listens on port 9"));
    assert!(
        message.contains("is `faultline serve` running there?"),
        "{message}"
    );
}

#[test]
fn the_cli_writes_each_renderer_s_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = workload::write(dir.path());
    let out_dir = dir.path().join("out");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["scenarios", "--render", "chaos-mesh", "--top", "5", "--out"])
        .arg(&out_dir)
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("5 scenario(s)"), "{stderr}");
    let written: Vec<_> = std::fs::read_dir(out_dir.join("chaos-mesh"))
        .unwrap()
        .collect();
    assert_eq!(written.len(), 6, "five scenarios and the workflow");
    assert!(out_dir.join("chaos-mesh/workflow.yaml").exists());

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["scenarios", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for want in [
        "--server <URL>",
        "chaos-mesh",
        "chaostoolkit",
        "FAULTLINE_LLM_API_KEY",
        "--llm-model",
    ] {
        assert!(help.contains(want), "--help lacks {want}:\n{help}");
    }
}

#[test]
fn a_settings_file_names_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenarios.yaml");
    std::fs::write(&path, "duration: 2m\nkubernetes:\n  label_kee: app\n").unwrap();
    let message = format!("{:#}", cli::load_settings(Some(&path)).unwrap_err());
    assert!(
        message.contains("scenarios.yaml: at `kubernetes.label_kee`"),
        "{message}"
    );
    assert!(message.contains("unknown field `label_kee`"), "{message}");
    std::fs::write(&path, "duration: 2m\nkubernetes: {label_key: tier}\n").unwrap();
    let settings = cli::load_settings(Some(&path)).unwrap();
    assert_eq!(settings.duration.as_secs(), 120);
    assert_eq!(settings.kubernetes.label_key, "tier");
}
