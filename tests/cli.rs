//! The `faultline` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

#[test]
fn analyze_prints_json_and_tables() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/formats/shop.zipkin.json"
    );
    let out = faultline()
        .args(["analyze", "--format", "json", fixture])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["files"][0]["format"], "zipkin_json");
    assert_eq!(doc["edges"].as_array().unwrap().len(), 6);
    let out = faultline().args(["analyze", fixture]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("checkout -> payments"), "{text}");
    assert!(text.contains("33.3%"), "{text}");
}

#[test]
fn analyze_names_an_unreadable_or_unknown_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "hello").unwrap();
    let out = faultline().args(["analyze"]).arg(&junk).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("junk.txt") && err.contains("not a known trace format"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_config_with_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let text = faultline::config::DEFAULT_PIPELINE
        .replace("naming: tempo", "naming: tempo\n    colour: blue");
    std::fs::write(&path, text).unwrap();
    let out = faultline()
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("colour") && err.contains("processors.graph"),
        "{err}"
    );
}

#[test]
fn serve_runs_the_default_pipeline_and_stops_on_sigterm() {
    let mut child = faultline()
        .arg("serve")
        .env("FAULTLINE_GRPC_ENDPOINT", "127.0.0.1:0")
        .env("FAULTLINE_HTTP_ENDPOINT", "127.0.0.1:0")
        .env("FAULTLINE_API_ENDPOINT", "127.0.0.1:0")
        .env("FAULTLINE_PROXY_ENDPOINT", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut api = None;
    for _ in 0..3 {
        let line = lines.next().expect("a listening line").unwrap();
        assert!(line.starts_with("faultline: "), "{line}");
        if let Some(addr) = line.strip_prefix("faultline: api listening on ") {
            api = Some(addr.to_owned());
        }
    }
    let api = api.expect("the API address is printed");
    let health = get(&format!("http://{api}/healthz"));
    assert_eq!(health.trim(), "ok");
    let graph: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{api}/api/graph"))).unwrap();
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 0);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    for _ in 0..50 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("faultline serve did not stop within 5 s of SIGTERM");
}

/// A blocking GET with a tiny runtime (the binary is out of process).
fn get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}
