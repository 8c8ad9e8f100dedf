//! `faultline demo --cycles 1 --no-ui`: the whole loop on the built-in
//! shop, from the command line, as a new user runs it.

use std::process::Command;

#[test]
fn one_cycle_of_the_demo_finds_hidden_failures() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "--log",
            "error",
            "demo",
            "--cycles",
            "1",
            "--no-ui",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("faultline demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("faultline demo report"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("demo-report.json")).unwrap())
            .unwrap();
    let cycle = &report[0];
    let results = cycle["results"].as_array().unwrap();
    assert!(!results.is_empty(), "experiments ran: {stdout}");
    let found = cycle["hidden_failures_found"].as_array().unwrap();
    assert!(
        found.len() >= 2,
        "at least two hidden failures found as unexpected verdicts: {stdout}"
    );
    for r in results {
        assert!(
            r["baseline"].as_object().is_some_and(|b| !b.is_empty()),
            "each run has a baseline"
        );
    }
    // The feedback loop: a target of an unexpected run now weighs more.
    let raised = cycle["after"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["feedback_weight"].as_f64().unwrap() > 1.0);
    assert!(
        raised,
        "the second ranking shows raised priorities: {stdout}"
    );
    // Results, reports and weights are on disk.
    assert!(dir.path().join("experiments/results.jsonl").exists());
    assert!(dir.path().join("feedback.json").exists());
}
