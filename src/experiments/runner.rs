//! The runner: baseline, inject, watch, remove, recover, verdict, feedback.
//!
//! The fault is removed on every way out — the end of its duration, a
//! guardrail, Ctrl-C/SIGTERM (the caller's `interrupt`), a panic in the
//! watcher (it runs as its own task) — and the journal names it from just
//! before injection until just after removal, so a kill -9 leaves a record
//! that the next start cleans up.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::band::{bands, Band};
use super::journal::{self, ActiveFault, JournalError};
use super::plan::{Plan, RunSettings};
use super::result::{ExperimentResult, Phase, Point, Trend, Verdict};
use super::source::{Source, SourceError};
use super::toxiproxy::{Toxiproxy, ToxiproxyError};
use crate::graph::now_ms;
use crate::operators::feedback::{Feedback, FeedbackError};
use crate::operators::SignalRecord;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no traffic on {0} during the {1} baseline: there is nothing to measure against; send traffic through the target first")]
    NoTraffic(String, String),
    #[error("{key} is already outside its tolerance ({signal}): the system must be steady before a fault is injected")]
    AlreadyDegraded { key: String, signal: String },
    #[error("interrupted; the fault was removed")]
    Interrupted,
    #[error(transparent)]
    Toxiproxy(#[from] ToxiproxyError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Feedback(#[from] FeedbackError),
}

pub struct Runner {
    pub settings: RunSettings,
    pub source: Source,
    /// The operators' feedback file; unexpected verdicts raise weights in it.
    pub feedback_file: Option<std::path::PathBuf>,
}

/// What the watcher saw while the fault was on.
#[derive(Default)]
struct Watched {
    points: Vec<Point>,
    aborted: Option<String>,
    detected_ms: Option<u64>,
    peak: BTreeMap<String, f64>,
}

type Bands = BTreeMap<(String, String), Band>;

impl Runner {
    /// Runs one plan to its verdict; `interrupt` resolving stops it early
    /// (the fault is removed first).
    pub async fn run(
        &self,
        plan: &Plan,
        interrupt: impl std::future::Future<Output = ()>,
    ) -> Result<ExperimentResult, RunError> {
        let data = &self.settings.data_dir;
        journal::clean_leftovers(data).await?;
        let run_id = format!("{}-{}", plan.scenario_id, now_ms());
        let started_ms = now_ms();
        let (bands, mut timeline) = self.baseline(plan, started_ms).await?;
        let fault = self.inject(plan, &run_id).await?;
        let fault_start_ms = now_ms();
        let watch = tokio::spawn(watch_fault(
            self.source.clone(),
            plan.clone(),
            bands.clone(),
            self.settings.tick,
            fault_start_ms,
        ));
        let abort = watch.abort_handle();
        let watched = tokio::select! {
            joined = watch => joined.unwrap_or_else(|e| Watched {
                aborted: Some(format!("the watcher failed: {e}")),
                ..Watched::default()
            }),
            _ = interrupt => {
                abort.abort();
                self.remove(&fault, &run_id).await?;
                return Err(RunError::Interrupted);
            }
        };
        self.remove(&fault, &run_id).await?;
        let fault_end_ms = now_ms();
        timeline.extend(watched.points.iter().cloned());
        let (recovery, ttr) = self.recover(plan, &bands, fault_end_ms).await?;
        timeline.extend(recovery);
        let mut result = ExperimentResult {
            run_id,
            scenario_id: plan.scenario_id.clone(),
            title: plan.title.clone(),
            target: plan.target.clone(),
            proxy: plan.proxy.clone(),
            started_ms,
            fault_start_ms,
            fault_end_ms,
            ended_ms: now_ms(),
            baseline: bands
                .iter()
                .map(|((k, s), b)| (format!("{k}/{s}"), *b))
                .collect(),
            timeline,
            aborted: watched.aborted.clone(),
            time_to_detect_ms: watched.detected_ms,
            time_to_recover_ms: ttr,
            recovered: ttr.is_some(),
            peak: watched.peak.clone(),
            verdict: Verdict::Expected,
            reasons: Vec::new(),
            feedback: BTreeMap::new(),
            trend: Trend::First,
        };
        self.conclude(plan, &mut result)?;
        Ok(result)
    }

    /// Samples the steady state; refuses when the target has no traffic or
    /// is already out of tolerance.
    async fn baseline(&self, plan: &Plan, from_ms: u64) -> Result<(Bands, Vec<Point>), RunError> {
        let until = tokio::time::Instant::now() + self.settings.baseline;
        let mut since = from_ms;
        let mut records = Vec::new();
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(self.settings.tick / 2).await;
            let fresh = self.watched_since(plan, since).await?;
            since = fresh.iter().map(|r| r.window_end_ms).max().unwrap_or(since);
            records.extend(fresh);
        }
        let target_seen = records.iter().any(|r| r.key == plan.target && r.calls > 0);
        if !target_seen {
            let d = humantime::format_duration(self.settings.baseline).to_string();
            return Err(RunError::NoTraffic(plan.target.clone(), d));
        }
        if let Some((key, signal)) = last_out_of_tolerance(&records) {
            return Err(RunError::AlreadyDegraded { key, signal });
        }
        let mut samples: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for r in &records {
            for (name, s) in &r.signals {
                samples
                    .entry((r.key.clone(), name.to_owned()))
                    .or_default()
                    .push(s.value);
            }
        }
        let bands = bands(&samples);
        let points = records
            .iter()
            .map(|r| point(r, Phase::Baseline, &bands))
            .collect();
        Ok((bands, points))
    }

    async fn watched_since(&self, plan: &Plan, since: u64) -> Result<Vec<SignalRecord>, RunError> {
        let watch: HashSet<&str> = plan.watch.iter().map(String::as_str).collect();
        let mut records = self.source.since(since).await?;
        records.retain(|r| watch.contains(r.key.as_str()) || r.key == plan.target);
        Ok(records)
    }

    /// Journals the fault, then creates it.
    async fn inject(&self, plan: &Plan, run_id: &str) -> Result<ActiveFault, RunError> {
        let api = Toxiproxy::new(&self.settings.proxy_url);
        let toxics: Vec<serde_json::Value> = plan
            .toxics
            .iter()
            .enumerate()
            .map(|(i, t)| named(t, run_id, i))
            .collect();
        let fault = ActiveFault {
            run_id: run_id.to_owned(),
            proxy_url: self.settings.proxy_url.clone(),
            proxy: plan.proxy.clone(),
            toxics: toxics
                .iter()
                .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
                .collect(),
            disabled: plan.disable_proxy,
            started_ms: now_ms(),
        };
        journal::set_active(&self.settings.data_dir, Some(&fault), run_id)?;
        for t in &toxics {
            if let Err(e) = api.add_toxic(&plan.proxy, t).await {
                self.remove(&fault, run_id).await?;
                return Err(e.into());
            }
        }
        if plan.disable_proxy {
            api.set_enabled(&plan.proxy, false).await?;
        }
        tracing::info!(run = run_id, proxy = %plan.proxy, toxics = fault.toxics.len(), "fault injected");
        Ok(fault)
    }

    /// Removes the fault, retrying a few times; the journal entry goes only
    /// once it is really gone.
    async fn remove(&self, fault: &ActiveFault, run_id: &str) -> Result<(), RunError> {
        let mut last = None;
        for attempt in 0..5u32 {
            match journal::remove(fault).await {
                Ok(()) => {
                    journal::set_active(&self.settings.data_dir, None, run_id)?;
                    tracing::info!(run = run_id, "fault removed");
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
        }
        Err(last.expect("five attempts failed").into())
    }

    /// Waits until every watched signal is in band for K consecutive
    /// windows; returns the points seen and the time to recover.
    async fn recover(
        &self,
        plan: &Plan,
        bands: &Bands,
        removed_ms: u64,
    ) -> Result<(Vec<Point>, Option<u64>), RunError> {
        let limit = tokio::time::Instant::now() + self.settings.recover_limit;
        let need = self.settings.recover_ticks.max(1);
        let mut since = removed_ms.saturating_sub(self.settings.tick.as_millis() as u64);
        let mut points = Vec::new();
        let mut run: Vec<u64> = Vec::new();
        while tokio::time::Instant::now() < limit {
            tokio::time::sleep(self.settings.tick / 2).await;
            let fresh = self.watched_since(plan, since).await?;
            since = fresh.iter().map(|r| r.window_end_ms).max().unwrap_or(since);
            for (window_end, records) in by_window(&fresh) {
                let pts: Vec<Point> = records
                    .iter()
                    .map(|r| point(r, Phase::Recovery, bands))
                    .collect();
                let healthy = records.iter().any(|r| r.key == plan.target && r.calls > 0)
                    && pts
                        .iter()
                        .filter(|p| gates_recovery(&p.key))
                        .all(|p| p.out_of_band.is_empty());
                if healthy && window_end > removed_ms {
                    run.push(window_end);
                } else {
                    run.clear();
                }
                points.extend(pts);
                if run.len() >= need {
                    let window = self.window_ms(&records);
                    let first_start = run[0].saturating_sub(window);
                    return Ok((points, Some(first_start.saturating_sub(removed_ms))));
                }
            }
        }
        Ok((points, None))
    }

    fn window_ms(&self, records: &[&SignalRecord]) -> u64 {
        records
            .first()
            .map_or(0, |r| r.window_end_ms - r.window_start_ms)
    }

    /// Verdict, trend, feedback, persistence and reports.
    fn conclude(&self, plan: &Plan, r: &mut ExperimentResult) -> Result<(), RunError> {
        r.reasons = reasons(plan, r);
        r.verdict = if r.reasons.is_empty() {
            Verdict::Expected
        } else {
            Verdict::Unexpected
        };
        let history: Vec<ExperimentResult> = journal::read_results(&self.settings.data_dir);
        r.trend = trend(&history, r, self.settings.tick);
        if r.verdict == Verdict::Unexpected {
            let mut feedback = Feedback::load(self.feedback_file.as_deref())?;
            let mut keys: Vec<&String> = vec![&plan.target];
            keys.extend(plan.watch.iter().filter(|k| **k != plan.target));
            for key in keys {
                let w = feedback.raise(key, self.settings.feedback_factor)?;
                r.feedback.insert(key.clone(), w);
            }
        }
        let line = serde_json::to_vec(r).expect("results serialize");
        journal::append_result(&self.settings.data_dir, &line)?;
        if let Err(e) = super::report::write_all(&self.settings.data_dir, r) {
            tracing::error!(error = %e, run = %r.run_id, "cannot write the run's reports");
        }
        Ok(())
    }
}

/// Gives each toxic a name unique to the run (so cleanup finds exactly it).
fn named(toxic: &serde_json::Value, run_id: &str, i: usize) -> serde_json::Value {
    let mut t = toxic.clone();
    if t.get("name").and_then(|n| n.as_str()).is_none() {
        let kind = t["type"].as_str().unwrap_or("toxic").to_owned();
        t["name"] = format!("faultline_{run_id}_{i}_{kind}").into();
    }
    t
}

/// Watches the fault for its duration (or until a guardrail trips).
async fn watch_fault(
    source: Source,
    plan: Plan,
    bands: Bands,
    tick: Duration,
    start_ms: u64,
) -> Watched {
    let until = tokio::time::Instant::now() + plan.duration;
    let mut w = Watched::default();
    let mut since = start_ms;
    let guard_key = plan
        .guardrails
        .key
        .clone()
        .unwrap_or_else(|| plan.target.clone());
    while tokio::time::Instant::now() < until && w.aborted.is_none() {
        tokio::time::sleep(tick / 2).await;
        let Ok(mut fresh) = source.since(since).await else {
            continue;
        };
        fresh.retain(|r| plan.watch.contains(&r.key) || r.key == plan.target);
        since = fresh.iter().map(|r| r.window_end_ms).max().unwrap_or(since);
        for r in &fresh {
            let p = point(r, Phase::Fault, &bands);
            if !p.out_of_band.is_empty() && w.detected_ms.is_none() {
                w.detected_ms = Some(r.window_end_ms.saturating_sub(start_ms));
            }
            for (name, v) in &p.signals {
                let slot = w
                    .peak
                    .entry(format!("{}/{name}", r.key))
                    .or_insert(f64::MIN);
                *slot = slot.max(*v);
            }
            if r.key == guard_key {
                w.aborted = w.aborted.take().or_else(|| guardrail(&plan, r));
            }
            w.points.push(p);
        }
    }
    w
}

fn guardrail(plan: &Plan, r: &SignalRecord) -> Option<String> {
    let g = &plan.guardrails;
    let value = |n: &str| r.signals.get(n).map(|s| s.value);
    if let (Some(max), Some(v)) = (g.max_error_rate, value("error_rate")) {
        if v > max {
            return Some(format!("guardrail: {} error_rate {v:.3} > {max}", r.key));
        }
    }
    if let (Some(max), Some(v)) = (g.max_p99_ms, value("p99_ms")) {
        if v > max {
            return Some(format!("guardrail: {} p99 {v:.1} ms > {max} ms", r.key));
        }
    }
    None
}

fn point(r: &SignalRecord, phase: Phase, bands: &Bands) -> Point {
    let signals: BTreeMap<String, f64> = r
        .signals
        .iter()
        .map(|(k, s)| (k.to_owned(), s.value))
        .collect();
    let out_of_band = signals
        .iter()
        .filter(|(name, v)| {
            bands
                .get(&(r.key.clone(), (*name).clone()))
                .is_some_and(|b| !b.holds(**v))
        })
        .map(|(name, _)| name.clone())
        .collect();
    Point {
        window_end_ms: r.window_end_ms,
        phase,
        key: r.key.clone(),
        signals,
        out_of_band,
    }
}

/// Paths and clusters are read from assembled traces, so their records
/// trail the traffic by the trace idle time: they are kept in the timeline
/// but do not decide when the system recovered.
fn gates_recovery(key: &str) -> bool {
    !(key.starts_with("path:") || key.starts_with("cluster:"))
}

fn by_window(records: &[SignalRecord]) -> BTreeMap<u64, Vec<&SignalRecord>> {
    let mut out: BTreeMap<u64, Vec<&SignalRecord>> = BTreeMap::new();
    for r in records {
        out.entry(r.window_end_ms).or_default().push(r);
    }
    out
}

/// The (key, signal) out of tolerance in the last baseline window, if any.
fn last_out_of_tolerance(records: &[SignalRecord]) -> Option<(String, String)> {
    let last = records.iter().map(|r| r.window_end_ms).max()?;
    records
        .iter()
        .filter(|r| r.window_end_ms == last)
        .find_map(|r| {
            r.signals
                .iter()
                .find(|(_, s)| !s.within_tolerance)
                .map(|(n, _)| (r.key.clone(), n.to_owned()))
        })
}

/// Why the hypothesis did not hold (empty: it did).
fn reasons(plan: &Plan, r: &ExperimentResult) -> Vec<String> {
    let h = &plan.hypothesis;
    let mut out: Vec<String> = r.aborted.iter().cloned().collect();
    for (key, peak) in &r.peak {
        let limit = match key.rsplit_once('/') {
            Some((_, "error_rate")) => h.max_error_rate,
            Some((_, "p99_ms")) => h.max_p99_ms,
            _ => None,
        };
        if let Some(limit) = limit.filter(|l| peak > l) {
            let base = r.baseline.get(key).map_or(String::new(), |b| {
                format!(" (baseline median {:.3})", b.median)
            });
            out.push(format!(
                "{key} reached {peak:.3}, above the hypothesis limit {limit}{base}"
            ));
        }
    }
    if let (Some(max), Some(peak)) = (
        h.max_retry_amplification,
        r.peak.get(&format!("{}/retry_amplification", r.target)),
    ) {
        if peak > &max {
            out.push(format!(
                "{} made {peak:.2} attempts per call, above the {max} the hypothesis allows",
                r.target
            ));
        }
    }
    for pair in &h.steady {
        if let (Some(peak), Some(band)) = (r.peak.get(pair), r.baseline.get(pair)) {
            if !band.holds(*peak) {
                out.push(format!(
                    "{pair} left its baseline: {peak:.3} against at most {:.3} (median {:.3})",
                    band.upper, band.median
                ));
            }
        }
    }
    let within = h.recover_within.as_millis() as u64;
    match r.time_to_recover_ms {
        None => out.push(format!(
            "{} did not recover within the runner's limit",
            r.target
        )),
        Some(t) if t > within => out.push(format!(
            "{} took {:.1} s to recover, more than the {:.1} s the hypothesis allows",
            r.target,
            t as f64 / 1000.0,
            within as f64 / 1000.0
        )),
        Some(_) => {}
    }
    out
}

fn trend(history: &[ExperimentResult], now: &ExperimentResult, tick: Duration) -> Trend {
    let Some(prev) = history
        .iter()
        .rev()
        .find(|p| p.scenario_id == now.scenario_id)
    else {
        return Trend::First;
    };
    let slack = tick.as_millis() as u64;
    match (prev.time_to_recover_ms, now.time_to_recover_ms) {
        (Some(a), Some(b)) if b > a + slack => Trend::Worse,
        (Some(a), Some(b)) if b + slack < a => Trend::Better,
        (Some(_), Some(_)) | (None, None) => Trend::Same,
        (None, Some(_)) => Trend::Better,
        (Some(_), None) => Trend::Worse,
    }
}
