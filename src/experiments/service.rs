//! Experiments inside `faultline serve`: `POST /api/experiments` starts a
//! run in the background, `GET /api/experiments` lists running and
//! completed runs, and each result goes to the exporters
//! (`faultline.experiments` on Kafka, `experiments.jsonl` by default).

use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use super::journal;
use super::plan::{Plan, RunSettings};
use super::result::ExperimentResult;
use super::runner::Runner;
use super::source::Source;
use crate::exporters::{Exporter, Record, Stream};
use crate::graph::now_ms;
use crate::operators::SharedLatest;

/// A run in progress, as `GET /api/experiments` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunningRun {
    pub scenario_id: String,
    pub title: String,
    pub target: String,
    pub started_ms: u64,
}

pub struct Service {
    settings: RunSettings,
    latest: SharedLatest,
    feedback_file: Option<std::path::PathBuf>,
    exporters: Vec<Arc<dyn Exporter>>,
    running: Mutex<Vec<RunningRun>>,
    stop: watch::Receiver<bool>,
}

impl Service {
    pub fn new(
        settings: RunSettings,
        latest: SharedLatest,
        feedback_file: Option<std::path::PathBuf>,
        exporters: Vec<Arc<dyn Exporter>>,
        stop: watch::Receiver<bool>,
    ) -> Service {
        Service {
            settings,
            latest,
            feedback_file,
            exporters,
            running: Mutex::new(Vec::new()),
            stop,
        }
    }

    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// Starts a run in the background; refuses a second run on the same
    /// target while one is on (two faults would blur both verdicts).
    pub fn start(self: &Arc<Self>, plan: Plan) -> Result<RunningRun, String> {
        let run = RunningRun {
            scenario_id: plan.scenario_id.clone(),
            title: plan.title.clone(),
            target: plan.target.clone(),
            started_ms: now_ms(),
        };
        {
            let mut running = self.running.lock();
            if running.iter().any(|r| r.target == plan.target) {
                return Err(format!(
                    "an experiment on {} is already running",
                    plan.target
                ));
            }
            running.push(run.clone());
        }
        let me = self.clone();
        tokio::spawn(async move { me.run(plan).await });
        Ok(run)
    }

    async fn run(self: Arc<Self>, plan: Plan) {
        let runner = Runner {
            settings: self.settings.clone(),
            source: Source::Local(self.latest.clone()),
            feedback_file: self.feedback_file.clone(),
        };
        let mut stop = self.stop.clone();
        let interrupt = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        match runner.run(&plan, interrupt).await {
            Ok(result) => self.publish(&result),
            Err(error) => {
                tracing::error!(%error, scenario = %plan.scenario_id, "experiment failed")
            }
        }
        self.running.lock().retain(|r| r.target != plan.target);
    }

    fn publish(&self, result: &ExperimentResult) {
        let record = Record::new(Stream::Experiments, &result.target, result);
        for e in &self.exporters {
            e.export(std::slice::from_ref(&record));
        }
    }

    pub fn running(&self) -> Vec<RunningRun> {
        self.running.lock().clone()
    }

    /// Completed results, oldest first.
    pub fn results(&self) -> Vec<ExperimentResult> {
        journal::read_results(&self.settings.data_dir)
    }
}
