//! `faultline experiment run`: run plans against a live system from the
//! command line, reading signals from a running faultline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::experiments::source::Source;
use crate::experiments::{report, ExperimentResult, Plan, RunSettings, Runner, Verdict};

/// What `faultline experiment run` was asked to do.
pub struct RunArgs {
    pub plans: Vec<PathBuf>,
    pub server: String,
    pub settings: RunSettings,
    pub repeat: usize,
    pub feedback_file: PathBuf,
    pub junit: Option<PathBuf>,
}

/// Reads a plan from JSON or YAML (by extension; JSON otherwise).
pub fn load_plan(path: &Path) -> anyhow::Result<Plan> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let plan = if yaml {
        serde_yaml_ng::from_str(&text).map_err(anyhow::Error::from)
    } else {
        serde_json::from_str(&text).map_err(anyhow::Error::from)
    };
    plan.with_context(|| {
        format!(
            "{} is not an experiment plan (see docs/experiments.md)",
            path.display()
        )
    })
}

pub async fn run(args: RunArgs) -> anyhow::Result<Vec<ExperimentResult>> {
    let plans: Vec<Plan> = args
        .plans
        .iter()
        .map(|p| load_plan(p))
        .collect::<Result<_, _>>()?;
    let runner = Runner {
        settings: args.settings.clone(),
        source: Source::api(&args.server),
        feedback_file: Some(args.feedback_file.clone()),
    };
    let mut results = Vec::new();
    for plan in &plans {
        let mut ttrs = Vec::new();
        for n in 0..args.repeat.max(1) {
            eprintln!(
                "faultline: running {} ({}), run {} of {}",
                plan.title,
                plan.scenario_id,
                n + 1,
                args.repeat.max(1)
            );
            let result = runner.run(plan, super::serve::shutdown_signal()).await?;
            println!("{}", summary(&result));
            ttrs.extend(result.time_to_recover_ms);
            results.push(result);
        }
        if args.repeat > 1 {
            println!("{}", spread(&plan.scenario_id, &mut ttrs, args.repeat));
        }
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&results))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(results)
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("never".into(), |m| format!("{:.1}s", m as f64 / 1000.0))
}

pub fn summary(r: &ExperimentResult) -> String {
    let verdict = match r.verdict {
        Verdict::Expected => "expected",
        Verdict::Unexpected => "UNEXPECTED",
    };
    let mut line = format!(
        "{verdict}: {} on {} — detected after {}, recovered after {} ({:?})",
        r.title,
        r.target,
        secs(r.time_to_detect_ms),
        secs(r.time_to_recover_ms),
        r.trend
    );
    for reason in &r.reasons {
        line.push_str(&format!("\n  - {reason}"));
    }
    line
}

/// The spread of time to recover over repeated runs.
fn spread(id: &str, ttrs: &mut [u64], runs: usize) -> String {
    ttrs.sort_unstable();
    if ttrs.is_empty() {
        return format!("{id}: never recovered in {runs} runs");
    }
    let ms = |v: u64| Duration::from_millis(v).as_secs_f64();
    format!(
        "{id}: time to recover over {} of {runs} runs: min {:.1}s, median {:.1}s, max {:.1}s",
        ttrs.len(),
        ms(ttrs[0]),
        ms(ttrs[ttrs.len() / 2]),
        ms(ttrs[ttrs.len() - 1])
    )
}
