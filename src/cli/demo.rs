//! `faultline demo`: the demo shop, one or more cycles of the loop, and the
//! web page to watch it.

use anyhow::Context;

use crate::demo::cycle::{self, CycleReport, DemoSettings};

pub async fn run(settings: DemoSettings, ui: bool) -> anyhow::Result<Vec<CycleReport>> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
    let config = cycle::pipeline(&settings)?;
    let running = super::serve::start(&config).await?;
    let api = running.api.context("the demo needs the API")?;
    println!("faultline demo: web page at http://{api}/");
    let shop = cycle::start_shop(&running).await?;
    println!(
        "faultline demo: shop gateway at http://{}/checkout",
        shop.gateway
    );
    let traffic = cycle::drive(&shop, settings.rate);
    println!(
        "faultline demo: {}s of steady traffic to learn the baseline…",
        settings.warm_up.as_secs()
    );
    tokio::time::sleep(settings.warm_up).await;
    let mut reports = Vec::new();
    for n in 1..=settings.cycles.max(1) {
        println!("faultline demo: cycle {n}");
        let report = cycle::cycle(&running, &config, &settings).await?;
        println!("{}", cycle::report(&report));
        reports.push(report);
    }
    let path = settings.data_dir.join("demo-report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&reports)?)?;
    println!("faultline demo: report written to {}", path.display());
    if ui {
        println!("faultline demo: the web page stays up at http://{api}/ — Ctrl-C to stop");
        super::serve::shutdown_signal().await;
    }
    traffic.abort();
    shop.stop().await?;
    running.stop().await?;
    Ok(reports)
}
