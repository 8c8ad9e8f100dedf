//! `faultline demo --no-ui`, for scripts: the report, then the process
//! exits by itself. (Its own test binary, so it never shares the machine
//! with the full demo cycle in `tests/demo.rs`, whose baselines it would
//! disturb.)

use std::process::Command;

/// `--no-ui` is for scripts: the report, then the process exits by itself.
#[test]
fn with_no_ui_the_demo_exits_after_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["--log", "error", "demo", "--cycles", "1", "--no-ui"])
        .args(["--experiments", "0", "--warm-up", "3s"])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("faultline demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("faultline demo report"), "{stdout}");
    assert!(!stdout.contains("the web page stays up"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("demo-report.json")).unwrap())
            .unwrap();
    assert_eq!(report.as_array().map(Vec::len), Some(1), "one cycle");
    assert_eq!(
        report[0]["results"],
        serde_json::json!([]),
        "no experiments"
    );
}
