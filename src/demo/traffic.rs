//! Traffic for the demo shop: checkouts at a steady rate, with periodic
//! bursts, spread over customers and SKUs.
//!
//! Requests are sent open-loop — each on its own task, at its scheduled
//! time, whether or not earlier ones have answered — so a slow shop gets
//! the same offered load as a fast one, as with real users.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::rng;

/// How the generator drives the gateway.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Checkouts per second outside bursts.
    pub rate: f64,
    /// Rate multiplier during a burst (1 = no bursts).
    pub burst_factor: f64,
    /// A burst closes every period of this length ...
    pub burst_every: Duration,
    /// ... and lasts this long (so the first `burst_every - burst_length`
    /// are steady, which gives baselines time to form).
    pub burst_length: Duration,
    /// Distinct customers (the notification queue's ordering key).
    pub customers: u32,
    /// Distinct SKUs (cache keys).
    pub skus: u32,
    /// How long to send for.
    pub duration: Duration,
    /// How long one checkout may take before it counts as an error. Keep
    /// it above the shop's [`gateway_timeout`](super::ShopConfig::gateway_timeout)
    /// (9 s by default): a checkout given up here may still place an order.
    pub timeout: Duration,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            rate: 20.0,
            burst_factor: 3.0,
            burst_every: Duration::from_secs(10),
            burst_length: Duration::from_secs(2),
            customers: 20,
            skus: 10,
            duration: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("TrafficConfig.{0} {1}")]
    Invalid(&'static str, &'static str),
    #[error("building the traffic HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What the generator saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrafficReport {
    /// Checkouts sent.
    pub requests: u64,
    /// Answered 2xx: an order was placed.
    pub ok: u64,
    /// Answered otherwise, or not at all.
    pub errors: u64,
    /// Of the errors, those that hit the timeout.
    pub timeouts: u64,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok,
    Failed,
    TimedOut,
}

impl TrafficReport {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Failed => self.errors += 1,
            Outcome::TimedOut => {
                self.errors += 1;
                self.timeouts += 1;
            }
        }
    }
}

impl TrafficConfig {
    pub fn validate(&self) -> Result<(), TrafficError> {
        let invalid = |field, why| Err(TrafficError::Invalid(field, why));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return invalid("rate", "must be a positive number of requests per second");
        }
        if !(self.burst_factor.is_finite() && self.burst_factor >= 1.0) {
            return invalid("burst_factor", "must be at least 1");
        }
        if self.burst_every.is_zero() || self.burst_length > self.burst_every {
            return invalid("burst_length", "must fit in a non-zero burst_every");
        }
        if self.customers == 0 || self.skus == 0 {
            return invalid("customers", "and skus must be at least 1");
        }
        Ok(())
    }

    /// The rate at `elapsed` since the start: bursts close each period.
    pub fn rate_at(&self, elapsed: Duration) -> f64 {
        let period = self.burst_every.as_secs_f64();
        let into = elapsed.as_secs_f64() % period;
        if into >= period - self.burst_length.as_secs_f64() {
            self.rate * self.burst_factor
        } else {
            self.rate
        }
    }
}

/// Drives `POST /checkout` on `gateway` for `cfg.duration`, then waits for
/// the last answers; returns the counts.
pub async fn drive(
    gateway: SocketAddr,
    cfg: &TrafficConfig,
) -> Result<TrafficReport, TrafficError> {
    cfg.validate()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(cfg.timeout)
        .build()?;
    let url = format!("http://{gateway}/checkout");
    let start = Instant::now();
    let mut next = start;
    let mut in_flight = JoinSet::new();
    let mut report = TrafficReport::default();
    while next - start < cfg.duration {
        tokio::time::sleep_until(next).await;
        in_flight.spawn(checkout(
            client.clone(),
            url.clone(),
            cfg.customers,
            cfg.skus,
        ));
        report.requests += 1;
        next += Duration::from_secs_f64(1.0 / cfg.rate_at(next - start));
        while let Some(done) = in_flight.try_join_next() {
            report.count(done.unwrap_or(Outcome::Failed));
        }
    }
    while let Some(done) = in_flight.join_next().await {
        report.count(done.unwrap_or(Outcome::Failed));
    }
    Ok(report)
}

async fn checkout(client: reqwest::Client, url: String, customers: u32, skus: u32) -> Outcome {
    let body = json!({
        "customer": format!("customer-{}", rng::below(customers)),
        "sku": format!("sku-{}", rng::below(skus)),
        "qty": 1,
    });
    match client.post(url).json(&body).send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Ok,
        Ok(_) => Outcome::Failed,
        Err(e) if e.is_timeout() => Outcome::TimedOut,
        Err(_) => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_close_each_period() {
        let cfg = TrafficConfig {
            rate: 10.0,
            burst_factor: 3.0,
            burst_every: Duration::from_secs(4),
            burst_length: Duration::from_secs(1),
            ..TrafficConfig::default()
        };
        let at = |s: f64| cfg.rate_at(Duration::from_secs_f64(s));
        assert_eq!(at(0.0), 10.0);
        assert_eq!(at(2.9), 10.0);
        assert_eq!(at(3.0), 30.0);
        assert_eq!(at(3.9), 30.0);
        assert_eq!(at(4.1), 10.0);
        assert_eq!(at(7.5), 30.0);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = TrafficConfig {
            rate: 0.0,
            ..TrafficConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("rate"), "{err}");
        assert!(TrafficConfig::default().validate().is_ok());
    }
}
