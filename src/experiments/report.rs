//! Per-run reports: the JSON journal, JUnit XML (one test case per
//! scenario, so CI systems show verdicts) and Markdown with the timelines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::result::{ExperimentResult, Verdict};

/// Writes `result.json`, `junit.xml` and `report.md` under
/// `<data>/experiments/<run id>/`; returns that directory.
pub fn write_all(data_dir: &Path, r: &ExperimentResult) -> std::io::Result<PathBuf> {
    let dir = super::journal::dir(data_dir).join(&r.run_id);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("result.json"), serde_json::to_vec_pretty(r)?)?;
    std::fs::write(dir.join("junit.xml"), junit(std::slice::from_ref(r)))?;
    std::fs::write(dir.join("report.md"), markdown(r))?;
    Ok(dir)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: a test suite of runs, a failure per unexpected verdict.
pub fn junit(results: &[ExperimentResult]) -> String {
    let failures = results
        .iter()
        .filter(|r| r.verdict == Verdict::Unexpected)
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"faultline experiments\" tests=\"{}\" failures=\"{failures}\">",
        results.len()
    );
    for r in results {
        let secs = (r.ended_ms - r.started_ms) as f64 / 1000.0;
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{secs:.3}\">",
            xml_escape(&r.target),
            xml_escape(&format!("{} [{}]", r.title, r.scenario_id))
        );
        if r.verdict == Verdict::Unexpected {
            let _ = write!(
                out,
                "<failure message=\"{}\">{}</failure>",
                xml_escape(r.reasons.first().map_or("unexpected", String::as_str)),
                xml_escape(&r.reasons.join("\n"))
            );
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("—".into(), |m| format!("{:.1} s", m as f64 / 1000.0))
}

/// Markdown: verdict, times, reasons and the target's timeline.
pub fn markdown(r: &ExperimentResult) -> String {
    let mut out = String::new();
    let verdict = match r.verdict {
        Verdict::Expected => "expected",
        Verdict::Unexpected => "**unexpected**",
    };
    let _ = writeln!(out, "# {} ({})\n", r.title, r.scenario_id);
    let _ = writeln!(out, "* target: `{}` via proxy `{}`", r.target, r.proxy);
    let _ = writeln!(out, "* verdict: {verdict}; trend: {:?}", r.trend);
    let _ = writeln!(out, "* time to detect: {}", secs(r.time_to_detect_ms));
    let _ = writeln!(out, "* time to recover: {}", secs(r.time_to_recover_ms));
    for reason in r.reasons.iter().chain(r.aborted.iter()) {
        let _ = writeln!(out, "* {reason}");
    }
    for (key, w) in &r.feedback {
        let _ = writeln!(out, "* feedback weight of `{key}` is now {w:.2}");
    }
    let _ = writeln!(out, "\n## Timeline of `{}`\n", r.target);
    let _ = writeln!(
        out,
        "| window end (s from start) | phase | error rate | p99 ms | out of band |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for p in r.timeline.iter().filter(|p| p.key == r.target) {
        let at = p.window_end_ms.saturating_sub(r.started_ms) as f64 / 1000.0;
        let get = |n: &str| p.signals.get(n).map_or("—".into(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "| {at:.1} | {:?} | {} | {} | {} |",
            p.phase,
            get("error_rate"),
            get("p99_ms"),
            p.out_of_band.join(", ")
        );
    }
    out
}
