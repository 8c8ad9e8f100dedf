//! [`Operators`]: the state that turns one closed window after another
//! into signal records, anomaly events and a hotspot ranking.

use std::collections::{HashMap, VecDeque};

use super::baseline::{History, Judgement};
use super::feedback::Feedback;
use super::ranking::{rank, Candidate, RankContext};
use super::records::{
    AnomalyEvent, AnomalyState, Hotspot, Signal, SignalName, SignalRecord, Target,
};
use super::settings::OperatorSettings;
use super::signals::{observe, Observed};
use crate::graph::GraphView;

/// What one evaluation produced.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub signals: Vec<SignalRecord>,
    pub anomalies: Vec<AnomalyEvent>,
    pub hotspots: Vec<Hotspot>,
}

/// One signal's history among a target's.
fn signal_history(signals: &[(SignalName, History)], name: SignalName) -> Option<&History> {
    signals.iter().find(|(n, _)| *n == name).map(|(_, h)| h)
}

/// The signal name of a never-seen path cluster's anomaly.
pub const NEW_SIGNATURE: &str = "new_signature";

/// Cluster signatures remembered for [`NEW_SIGNATURE`]. Past this, those not
/// yet established (seen in fewer than `min_baseline_windows` windows) are
/// forgotten, and if the established ones alone fill it, new signatures are
/// no longer watched: without a bound, a workload whose traces keep taking
/// new shapes grew this map for as long as faultline ran.
const MAX_CLUSTERS_SEEN: usize = 100_000;

struct Active {
    id: String,
    started_ms: u64,
}

pub struct Operators {
    settings: OperatorSettings,
    /// Each tracked target's signal histories, by target key.
    history: HashMap<String, Vec<(SignalName, History)>>,
    /// (target, signal) histories held, against `max_tracked`.
    tracked: usize,
    active: HashMap<(String, String), Active>,
    /// Path cluster signatures seen, with the windows they were seen in.
    clusters_seen: HashMap<String, usize>,
    /// Running produced − consumed per destination.
    depth: HashMap<String, i64>,
    evaluated: u64,
    seq: HashMap<&'static str, u64>,
    pub feedback: Feedback,
    /// When the feedback file was last read (experiments write it).
    feedback_mtime: Option<std::time::SystemTime>,
}

impl Operators {
    pub fn new(settings: OperatorSettings, feedback: Feedback) -> Operators {
        Operators {
            settings,
            history: HashMap::new(),
            tracked: 0,
            active: HashMap::new(),
            clusters_seen: HashMap::new(),
            depth: HashMap::new(),
            evaluated: 0,
            seq: HashMap::new(),
            feedback,
            feedback_mtime: None,
        }
    }

    pub fn settings(&self) -> &OperatorSettings {
        &self.settings
    }

    /// Evaluates one closed window. `recent` is the view ranking reads
    /// (the last few windows merged), so a hotspot does not vanish because
    /// one window was quiet.
    pub fn evaluate(&mut self, window: &GraphView, recent: &GraphView) -> Evaluation {
        let (start, end) = (window.window.start_ms, window.window.end_ms);
        for d in &window.destinations {
            let depth = self.depth.entry(d.name.clone()).or_insert(0);
            *depth = (*depth + d.produced as i64 - d.consumed as i64).max(0);
        }
        let depth = &self.depth;
        let observed = observe(window, &|d| depth.get(&d.name).copied().unwrap_or(0) as u64);
        let mut eval = Evaluation::default();
        for o in observed {
            let record = self.judge(o, start, end, &mut eval.anomalies);
            eval.signals.push(record);
        }
        self.watch_clusters(window, end, &mut eval.anomalies);
        self.evaluated += 1;
        eval.hotspots = self.rank(recent, &eval.signals, end);
        eval
    }

    fn judge(
        &mut self,
        o: Observed,
        start: u64,
        end: u64,
        events: &mut Vec<AnomalyEvent>,
    ) -> SignalRecord {
        let key = o.target.key();
        let enough = o.calls >= self.settings.min_calls;
        let mut signals = Vec::with_capacity(o.values.len());
        for (&name, &value) in &o.values {
            let j = self.judge_signal(&o.target, &key, name, value, enough, end, events);
            let signal = Signal {
                value,
                baseline: j.baseline.map(Box::new),
                z: j.z,
                within_tolerance: j.within_tolerance,
            };
            signals.push((name.as_str(), signal));
        }
        SignalRecord {
            seq: self.next_seq("signals"),
            key,
            target: o.target,
            window_start_ms: start,
            window_end_ms: end,
            calls: o.calls,
            signals: signals.into_iter().collect(),
        }
    }

    /// Judges one signal against its target's history, and extends that
    /// history when the window had `enough` calls.
    #[allow(clippy::too_many_arguments)]
    fn judge_signal(
        &mut self,
        target: &Target,
        key: &str,
        name: SignalName,
        value: f64,
        enough: bool,
        end: u64,
        events: &mut Vec<AnomalyEvent>,
    ) -> Judgement {
        let (min_windows, z_max) = (
            self.settings.min_baseline_windows,
            self.settings.z_threshold,
        );
        let (keep, alpha) = (self.settings.baseline_windows, self.settings.ewma_alpha);
        let tracked = self.history.get(key).and_then(|h| signal_history(h, name));
        let mut j = match tracked {
            Some(h) => h.judge(name, value, min_windows, z_max),
            None => History::default().judge(name, value, min_windows, z_max),
        };
        // Only targets with enough calls get a history: at 10^5 edges
        // most see a call or two per window, and a history each for
        // them filled `max_tracked` with targets never judged.
        let room = tracked.is_some() || self.tracked < self.settings.max_tracked;
        if enough && room {
            self.history_of(key, name).push(value, keep, alpha);
            self.transition(target, key, name.as_str(), value, &j, end, events);
        } else {
            j.within_tolerance = true;
        }
        j
    }

    /// `key`'s history of `name`, created empty (and counted) if new. The
    /// key is copied only then: judging a window of 10^5 targets used to
    /// copy each target's key once per signal just to look it up.
    fn history_of(&mut self, key: &str, name: SignalName) -> &mut History {
        if !self.history.contains_key(key) {
            self.history.insert(key.to_owned(), Vec::new());
        }
        let signals = self.history.get_mut(key).expect("inserted just above");
        let at = match signals.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                self.tracked += 1;
                signals.push((name, History::default()));
                signals.len() - 1
            }
        };
        &mut signals[at].1
    }

    /// Opens or closes the anomaly of one (target, signal).
    #[allow(clippy::too_many_arguments)]
    fn transition(
        &mut self,
        target: &Target,
        key: &str,
        signal: &str,
        value: f64,
        j: &Judgement,
        at_ms: u64,
        events: &mut Vec<AnomalyEvent>,
    ) {
        let slot = (key.to_owned(), signal.to_owned());
        let open = self.active.contains_key(&slot);
        if !j.within_tolerance && !open {
            let id = format!("{key}/{signal}/{at_ms}");
            let reason = reason(signal, value, j);
            self.active.insert(
                slot,
                Active {
                    id: id.clone(),
                    started_ms: at_ms,
                },
            );
            let event = self.event(
                id,
                AnomalyState::Start,
                target,
                signal,
                value,
                j,
                at_ms,
                None,
                reason,
            );
            events.push(event);
        } else if j.within_tolerance && open {
            let a = self.active.remove(&slot).expect("checked just above");
            let reason = format!("{signal} is back within tolerance ({value:.3})");
            let event = self.event(
                a.id,
                AnomalyState::End,
                target,
                signal,
                value,
                j,
                a.started_ms,
                Some(at_ms),
                reason,
            );
            events.push(event);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        id: String,
        state: AnomalyState,
        target: &Target,
        signal: &str,
        value: f64,
        j: &Judgement,
        started_ms: u64,
        ended_ms: Option<u64>,
        reason: String,
    ) -> AnomalyEvent {
        AnomalyEvent {
            seq: self.next_seq("anomalies"),
            id,
            state,
            key: target.key(),
            target: target.clone(),
            signal: signal.to_owned(),
            value,
            baseline: j.baseline,
            z: j.z,
            started_ms,
            ended_ms,
            reason,
        }
    }

    /// A cluster never seen before is an anomaly once faultline has warmed
    /// up (so start-up does not flood); it ends once the cluster has been
    /// seen in enough windows to have a baseline of its own.
    fn watch_clusters(&mut self, view: &GraphView, at_ms: u64, events: &mut Vec<AnomalyEvent>) {
        let warm = self.evaluated >= self.settings.min_baseline_windows as u64;
        let need = self.settings.min_baseline_windows.max(1);
        if self.clusters_seen.len() >= MAX_CLUSTERS_SEEN {
            self.clusters_seen.retain(|_, n| *n > need);
        }
        for c in &view.clusters {
            let full = self.clusters_seen.len() >= MAX_CLUSTERS_SEEN;
            if full && !self.clusters_seen.contains_key(&c.signature) {
                continue;
            }
            let target = Target::Cluster {
                signature: c.signature.clone(),
                edges: c.edges.clone(),
            };
            let count = self.clusters_seen.entry(c.signature.clone()).or_insert(0);
            *count += 1;
            let count = *count;
            let j = Judgement {
                baseline: None,
                z: None,
                within_tolerance: count > need || (count == 1 && !warm),
            };
            if count == 1 && !warm {
                continue;
            }
            let key = target.key();
            let open = self
                .active
                .contains_key(&(key.clone(), NEW_SIGNATURE.to_owned()));
            if (count == 1 && !open) || (count > need && open) {
                self.transition(
                    &target,
                    &key,
                    NEW_SIGNATURE,
                    c.traces as f64,
                    &j,
                    at_ms,
                    events,
                );
            }
        }
    }

    /// Re-reads the feedback file when an experiment changed it, so a raised
    /// weight counts from the next window on.
    fn refresh_feedback(&mut self) {
        let Some(path) = self.settings.feedback_file.clone() else {
            return;
        };
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if mtime.is_none() || mtime == self.feedback_mtime {
            return;
        }
        match Feedback::load(Some(&path)) {
            Ok(f) => {
                self.feedback = f;
                self.feedback_mtime = mtime;
            }
            Err(error) => tracing::warn!(%error, "keeping the previous feedback weights"),
        }
    }

    fn rank(&mut self, recent: &GraphView, latest: &[SignalRecord], at_ms: u64) -> Vec<Hotspot> {
        self.refresh_feedback();
        let depth = &self.depth;
        let observed = observe(recent, &|d| depth.get(&d.name).copied().unwrap_or(0) as u64);
        let judged: HashMap<&str, &SignalRecord> =
            latest.iter().map(|r| (r.key.as_str(), r)).collect();
        let candidates: Vec<Candidate<'_>> = observed
            .iter()
            .filter(|o| o.calls > 0)
            .map(|o| {
                let key = o.target.key();
                let judged = judged.get(key.as_str()).copied();
                Candidate {
                    key,
                    observed: o,
                    judged,
                }
            })
            .collect();
        let mut anomalies: HashMap<String, Vec<String>> = HashMap::new();
        for ((key, _), a) in &self.active {
            anomalies.entry(key.clone()).or_default().push(a.id.clone());
        }
        anomalies.values_mut().for_each(|v| v.sort());
        let fan_out = recent
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.fan_out))
            .collect();
        let feedback = self.feedback.as_map();
        let ctx = RankContext {
            fan_out: &fan_out,
            anomalies: &anomalies,
            feedback: &feedback,
            weights: &self.settings.weights,
            top_k: self.settings.top_k,
            at_ms,
        };
        let mut hotspots = rank(&candidates, &ctx);
        for h in &mut hotspots {
            h.seq = self.next_seq("hotspots");
        }
        hotspots
    }

    /// Ids of anomalies open now.
    pub fn active_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.active.values().map(|a| a.id.clone()).collect();
        ids.sort();
        ids
    }

    fn next_seq(&mut self, stream: &'static str) -> u64 {
        let n = self.seq.entry(stream).or_insert(0);
        *n += 1;
        *n
    }
}

fn reason(signal: &str, value: f64, j: &Judgement) -> String {
    match (j.baseline, j.z) {
        (Some(b), Some(z)) => format!(
            "{signal} is {value:.3}, baseline median {:.3} (MAD {:.3}), robust z {z:.1}",
            b.median, b.mad
        ),
        _ => format!("{signal}: new path signature seen ({value:.0} traces)"),
    }
}

/// Hotspots of an offline import: every target's values over the whole
/// import, with no baselines (a file has no "before").
pub fn offline_hotspots(
    view: &GraphView,
    settings: &OperatorSettings,
    feedback: &Feedback,
) -> Vec<Hotspot> {
    let observed = observe(view, &|d| d.in_flight);
    let candidates: Vec<Candidate<'_>> = observed
        .iter()
        .filter(|o| o.calls > 0)
        .map(|o| Candidate {
            key: o.target.key(),
            observed: o,
            judged: None,
        })
        .collect();
    let fan_out = view
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.fan_out))
        .collect();
    let feedback = feedback.as_map();
    let ctx = RankContext {
        fan_out: &fan_out,
        anomalies: &HashMap::new(),
        feedback: &feedback,
        weights: &settings.weights,
        top_k: settings.top_k,
        at_ms: crate::graph::now_ms(),
    };
    rank(&candidates, &ctx)
}

/// Keeps the last `n` items (for the API's recent anomaly events).
pub fn keep_last<T>(queue: &mut VecDeque<T>, n: usize) {
    while queue.len() > n {
        queue.pop_front();
    }
}
