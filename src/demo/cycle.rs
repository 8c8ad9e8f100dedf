//! One cycle of the loop on the demo shop: graph → hotspots → scenarios →
//! experiments through the fault proxy → verdicts and recovery times →
//! feedback → a second ranking that shows the changed priorities.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::shop::{self, Dependency, RunningShop, ShopConfig};
use super::traffic::{self, TrafficConfig};
use crate::cli::serve::Running;
use crate::experiments::source::Source;
use crate::experiments::{from_scenario, ExperimentResult, Plan, RunSettings, Runner, Verdict};
use crate::operators::Hotspot;
use crate::scenarios::FaultKind;

/// How the demo runs (`faultline demo` flags).
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// Where the API and web page listen.
    pub api: SocketAddr,
    pub data_dir: PathBuf,
    /// Cycles of the loop to run.
    pub cycles: usize,
    /// Experiments per cycle.
    pub experiments: usize,
    /// Steady traffic before the first ranking.
    pub warm_up: Duration,
    /// Baseline sampled before each fault.
    pub baseline: Duration,
    /// How long each fault stays on (caps the scenario's own duration).
    pub fault: Duration,
    /// Checkouts per second.
    pub rate: f64,
}

impl Default for DemoSettings {
    fn default() -> Self {
        DemoSettings {
            api: "127.0.0.1:8080".parse().expect("a valid address"),
            data_dir: "./faultline-demo".into(),
            cycles: 1,
            experiments: 3,
            warm_up: Duration::from_secs(20),
            baseline: Duration::from_secs(8),
            fault: Duration::from_secs(10),
            rate: 20.0,
        }
    }
}

/// What one cycle found.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub before: Vec<Ranked>,
    pub results: Vec<ExperimentResult>,
    pub after: Vec<Ranked>,
    /// The shop's hidden failures that unexpected verdicts brought out.
    pub hidden_failures_found: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub rank: usize,
    pub key: String,
    pub score: f64,
    pub feedback_weight: f64,
}

/// The pipeline the demo runs: the embedded default on loopback, with the
/// demo's data directory and a short experiment baseline.
pub fn pipeline(s: &DemoSettings) -> anyhow::Result<crate::config::PipelineConfig> {
    let data = s.data_dir.display().to_string();
    let api = crate::config::DEFAULT_PIPELINE.replace(
        "${env:FAULTLINE_API_ENDPOINT:-127.0.0.1:8080}",
        &s.api.to_string(),
    );
    let text = crate::config::on_free_ports(&api, &data)
        .replace("ttl: 10s", "ttl: 30s")
        .replace("recover_within: 30s", "recover_within: 10s")
        // Rank and plan widely: the shop is small, and its queue must make
        // the list even while it is healthy.
        .replace("top_k: 10", "top_k: 30")
        .replace("max_scenarios: 20", "max_scenarios: 60");
    Ok(crate::config::parse("the demo pipeline", &text)?)
}

/// The proxy name the Toxiproxy renderer gives the edge `caller → dep`.
fn proxy_name(dep: Dependency) -> String {
    format!("{}_to_{}", dep.caller(), dep.name())
}

/// Starts the shop with every dependency routed through a fault-proxy
/// listener named as the scenario renderer names it.
pub async fn start_shop(running: &Running) -> anyhow::Result<RunningShop> {
    let otlp = format!(
        "http://{}",
        running
            .grpc
            .context("the demo needs the OTLP/gRPC receiver")?
    );
    // Payments declines a few charges even when healthy, as real ones do:
    // the retries that follow are the evidence the retry-storm rule reads.
    let cfg = ShopConfig {
        payments_failure_rate: 0.05,
        ..ShopConfig::direct()
    };
    let shop = shop::start(cfg, &otlp).await?;
    let proxy = format!(
        "http://{}",
        running
            .faultproxy
            .context("the demo needs the fault proxy")?
    );
    let http = reqwest::Client::new();
    for dep in Dependency::ALL {
        let body = serde_json::json!({
            "name": proxy_name(dep),
            "listen": "127.0.0.1:0",
            "upstream": shop.upstream(dep).to_string(),
        });
        let created: serde_json::Value = http
            .post(format!("{proxy}/proxies"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let listen: SocketAddr = created["listen"].as_str().unwrap_or_default().parse()?;
        shop.reroute(dep, listen);
    }
    Ok(shop)
}

/// Drives traffic in the background until the returned handle is aborted.
pub fn drive(shop: &RunningShop, rate: f64) -> tokio::task::JoinHandle<()> {
    let gateway = shop.gateway;
    tokio::spawn(async move {
        let cfg = TrafficConfig {
            rate,
            duration: Duration::from_secs(24 * 3600),
            ..TrafficConfig::default()
        };
        if let Err(error) = traffic::drive(gateway, &cfg).await {
            tracing::error!(%error, "demo traffic stopped");
        }
    })
}

pub fn ranking(running: &Running) -> Vec<Ranked> {
    running.latest.read().hotspots.iter().map(ranked).collect()
}

fn ranked(h: &Hotspot) -> Ranked {
    Ranked {
        rank: h.rank,
        key: h.key.clone(),
        score: h.score,
        feedback_weight: h.feedback_weight,
    }
}

/// Fault kinds that test an interaction between services (retries, queues,
/// caches) rather than one dependency's speed: the demo runs these first,
/// since they are what unit tests of one service never see.
const INTERACTION: [FaultKind; 4] = [
    FaultKind::RetryStorm,
    FaultKind::SlowConsumer,
    FaultKind::Reorder,
    FaultKind::CacheDegradation,
];

/// The plans for the current scenarios that the fault proxy can run:
/// interaction faults first, then the rest in rank order, at most one per
/// (target, kind) and one per kind, up to `s.experiments`.
pub fn plans(
    running: &Running,
    config: &crate::config::PipelineConfig,
    s: &DemoSettings,
) -> Vec<Plan> {
    let mut scenarios = running.latest.read().scenarios.clone();
    let order = |k: &FaultKind| {
        INTERACTION
            .iter()
            .position(|i| i == k)
            .unwrap_or(INTERACTION.len())
    };
    scenarios.sort_by_key(|sc| (order(&sc.fault.kind), sc.rank));
    println!(
        "faultline demo: {} scenarios for the current ranking",
        scenarios.len()
    );
    let ours: Vec<String> = Dependency::ALL.into_iter().map(proxy_name).collect();
    let mut kinds = Vec::new();
    let mut out = Vec::new();
    for sc in &scenarios {
        if out.len() >= s.experiments {
            break;
        }
        if kinds.contains(&sc.fault.kind) {
            continue;
        }
        let planned = from_scenario::plan(sc, &config.processors.scenarios)
            .ok()
            .filter(|p| ours.contains(&p.proxy))
            .or_else(|| consumer_plan(sc));
        let Some(mut plan) = planned else {
            continue;
        };
        plan.duration = plan.duration.min(s.fault);
        kinds.push(sc.fault.kind);
        out.push(plan);
    }
    out
}

/// A slow consumer or reordering scenario acts on the consumer itself,
/// which no proxy sits in front of; in the shop the notifier's work is its
/// call to the email provider, so slowing (or jittering) that connection
/// slows the consumer the same way.
fn consumer_plan(sc: &crate::scenarios::Scenario) -> Option<Plan> {
    let (latency, jitter) = match sc.fault.kind {
        FaultKind::SlowConsumer => (sc.fault.params.latency_ms.unwrap_or(500), 0),
        FaultKind::Reorder => (150, 150),
        _ => return None,
    };
    if sc.target.key() != format!("destination:{}", shop::DESTINATION) {
        return None;
    }
    let toxic = serde_json::json!({
        "type": "latency",
        "stream": "downstream",
        "attributes": {"latency": latency, "jitter": jitter},
    });
    Some(Plan {
        scenario_id: sc.id.clone(),
        title: sc.title.clone(),
        target: sc.target.key(),
        watch: vec![sc.target.key(), "edge:notifier->email-provider".into()],
        proxy: proxy_name(Dependency::EmailProvider),
        toxics: vec![toxic],
        disable_proxy: false,
        duration: Duration::from_secs(sc.duration_s.max(1)),
        guardrails: Default::default(),
        hypothesis: crate::experiments::plan::Hypothesis {
            recover_within: Duration::from_secs(sc.hypothesis.recover_within_s.max(1)),
            // What the shop's owners believe of an async queue: a slow
            // consumer neither backs it up nor reorders a customer's mail.
            steady: ["out_of_order", "queue_depth"]
                .map(|signal| format!("{}/{signal}", sc.target.key()))
                .to_vec(),
            ..Default::default()
        },
    })
}

/// Runs one cycle on a running faultline and shop.
pub async fn cycle(
    running: &Running,
    config: &crate::config::PipelineConfig,
    s: &DemoSettings,
) -> anyhow::Result<CycleReport> {
    let before = ranking(running);
    let plans = plans(running, config, s);
    let experiments = config
        .experiments()
        .context("the demo needs the experiments extension")?;
    let runner = Runner {
        settings: RunSettings {
            proxy_url: format!("http://{}", running.faultproxy.context("no fault proxy")?),
            baseline: s.baseline,
            recover_limit: Duration::from_secs(60),
            ..experiments
        },
        source: Source::Local(running.latest.clone()),
        feedback_file: config.processors.operators.feedback_file.clone(),
    };
    let mut results = Vec::new();
    for plan in &plans {
        println!(
            "faultline demo: experiment {} ({})",
            plan.title, plan.target
        );
        match run_when_steady(&runner, plan).await {
            Ok(r) => {
                println!("  {}", crate::cli::experiment::summary(&r));
                results.push(r);
            }
            Err(e) => println!("  could not run: {e}"),
        }
    }
    // Let the ranking take the new weights in (it re-reads them per window).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut hidden: Vec<String> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Unexpected)
        .filter_map(hidden_failure)
        .map(str::to_owned)
        .collect();
    hidden.sort();
    hidden.dedup();
    Ok(CycleReport {
        before,
        results,
        after: ranking(running),
        hidden_failures_found: hidden,
    })
}

/// The hidden failure of the demo shop a fault on `target` brings out, if any.
pub fn hidden_failure(r: &ExperimentResult) -> Option<&'static str> {
    let t = r.target.as_str();
    let retries = r.reasons.iter().any(|x| x.contains("attempts per call"));
    if t.contains("payments") || r.title.starts_with("Retry storm") || retries {
        Some("payment retries hammer the inventory cache")
    } else if t == "destination:notifications" && r.title.contains("reorder") {
        Some("order confirmations arrive out of sequence")
    } else if t == "destination:notifications" || t.contains("email-provider") {
        Some("the notification queue silently backs up")
    } else {
        None
    }
}

/// Runs a plan, waiting (up to 30 s) for the system to settle first when
/// the previous experiment left it out of tolerance.
async fn run_when_steady(
    runner: &Runner,
    plan: &Plan,
) -> Result<ExperimentResult, crate::experiments::RunError> {
    for _ in 0..6 {
        match runner.run(plan, std::future::pending::<()>()).await {
            Err(crate::experiments::RunError::AlreadyDegraded { key, signal }) => {
                println!("  waiting for {key} ({signal}) to settle");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            other => return other,
        }
    }
    runner.run(plan, std::future::pending::<()>()).await
}

/// The short report printed at the end.
pub fn report(c: &CycleReport) -> String {
    let mut out =
        String::from("\nfaultline demo report\n=====================\n\nRanking before:\n");
    for r in c.before.iter().take(5) {
        out.push_str(&format!(
            "  {:>2}. {:<45} score {:>6.2}\n",
            r.rank, r.key, r.score
        ));
    }
    out.push_str("\nExperiments:\n");
    for r in &c.results {
        let verdict = if r.verdict == Verdict::Unexpected {
            "UNEXPECTED"
        } else {
            "expected"
        };
        let ttr = r
            .time_to_recover_ms
            .map_or("never".to_owned(), |t| format!("{:.1}s", t as f64 / 1000.0));
        out.push_str(&format!(
            "  {verdict:<10} {:<45} recovered after {ttr}\n",
            r.title
        ));
        if let (Verdict::Unexpected, Some(hidden)) = (r.verdict, hidden_failure(r)) {
            out.push_str(&format!("             hidden failure found: {hidden}\n"));
        }
        for reason in &r.reasons {
            out.push_str(&format!("             - {reason}\n"));
        }
    }
    let weights: BTreeMap<&str, f64> = c
        .after
        .iter()
        .map(|r| (r.key.as_str(), r.feedback_weight))
        .collect();
    out.push_str("\nRanking after feedback:\n");
    for r in c.after.iter().take(5) {
        let was = c
            .before
            .iter()
            .find(|b| b.key == r.key)
            .map_or("new".to_owned(), |b| format!("was {}", b.rank));
        out.push_str(&format!(
            "  {:>2}. {:<45} score {:>6.2}  weight {:.2} ({was})\n",
            r.rank,
            r.key,
            r.score,
            weights[r.key.as_str()]
        ));
    }
    out
}
