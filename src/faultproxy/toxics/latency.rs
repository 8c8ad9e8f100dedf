//! `latency`: every chunk waits `latency` ms (± `jitter`) from the moment it
//! was read, as Toxiproxy's does; chunks never overtake each other.
//!
//! Extension: `distribution` picks how the delay is drawn. Without it (or
//! with `uniform`) it is Toxiproxy's `latency + U[-jitter, jitter)` in whole
//! milliseconds. The others take `latency` as the mean and `jitter` as the
//! standard deviation, so one pair of numbers means the same thing whatever
//! the shape: `normal` (cut at 0), `lognormal` (always positive, a long right
//! tail, like real service times) and `pareto` (a heavy tail: most delays
//! small, a few very large). With `jitter` 0 every draw is `latency`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ms, Attributes, ToxicKind};
use crate::faultproxy::chain::{Behaviour, Ev, Queue};
use crate::faultproxy::rng::Rng;

/// No single delay is longer than this, whatever the tail draws.
const MAX_DELAY_MS: f64 = 3_600_000.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub latency: i64,
    pub jitter: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

/// The shape of the delay distribution (a faultline extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    Uniform,
    Normal,
    #[serde(alias = "log-normal", alias = "log_normal")]
    Lognormal,
    Pareto,
}

impl Attributes for Latency {
    const FIELDS: &'static [&'static str] = &["latency", "jitter", "distribution"];
}

impl Latency {
    /// One delay draw.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        if self.jitter <= 0 {
            return ms(self.latency);
        }
        let (mean, sd) = (self.latency as f64, self.jitter as f64);
        let millis = match self.distribution.unwrap_or(Distribution::Uniform) {
            Distribution::Uniform => {
                (self.latency + rng.below(2 * self.jitter as u64) as i64 - self.jitter) as f64
            }
            Distribution::Normal => mean + sd * rng.standard_normal(),
            Distribution::Lognormal => lognormal(mean, sd, rng),
            Distribution::Pareto => pareto(mean, sd, rng),
        };
        Duration::from_secs_f64(millis.clamp(0.0, MAX_DELAY_MS) / 1000.0)
    }
}

/// A log-normal draw with this mean and standard deviation.
fn lognormal(mean: f64, sd: f64, rng: &mut Rng) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    let sigma2 = (1.0 + (sd / mean).powi(2)).ln();
    let mu = mean.ln() - sigma2 / 2.0;
    (mu + sigma2.sqrt() * rng.standard_normal()).exp()
}

/// A Pareto draw with this mean and standard deviation: the shape α solves
/// sd²/mean² = 1/(α(α−2)), the scale is mean·(α−1)/α.
fn pareto(mean: f64, sd: f64, rng: &mut Rng) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    let alpha = 1.0 + (1.0 + (mean / sd).powi(2)).sqrt();
    let scale = mean * (alpha - 1.0) / alpha;
    let u = 1.0 - rng.next_f64(); // (0, 1]
    scale / u.powf(1.0 / alpha)
}

pub struct LatencyLink {
    attrs: Latency,
}

impl LatencyLink {
    pub fn new(attrs: &Latency) -> Self {
        LatencyLink {
            attrs: attrs.clone(),
        }
    }
}

impl Behaviour for LatencyLink {
    fn configure(&mut self, kind: &ToxicKind) {
        if let ToxicKind::Latency(a) = kind {
            self.attrs = a.clone();
        }
    }

    fn admit(&mut self, at: Instant, ev: Ev, rng: &mut Rng, out: &mut Queue) {
        let at = match ev {
            Ev::Data(_) => at + self.attrs.sample(rng),
            _ => at,
        };
        out.push(at, ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(d: Distribution) -> (f64, f64, Vec<f64>) {
        let l = Latency {
            latency: 100,
            jitter: 40,
            distribution: Some(d),
        };
        let mut rng = Rng::new(5);
        let xs: Vec<f64> = (0..50_000)
            .map(|_| l.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        (mean, sd, xs)
    }

    #[test]
    fn distributions_have_the_mean_and_spread_asked_for() {
        let (m, _, xs) = moments(Distribution::Uniform);
        assert!((m - 100.0).abs() < 2.0 && xs.iter().all(|x| (60.0..140.0).contains(x)));
        let (m, sd, _) = moments(Distribution::Normal);
        assert!(
            (m - 100.0).abs() < 2.0 && (sd - 40.0).abs() < 2.0,
            "{m} {sd}"
        );
        let (m, sd, xs) = moments(Distribution::Lognormal);
        assert!(
            (m - 100.0).abs() < 2.0 && (sd - 40.0).abs() < 3.0,
            "{m} {sd}"
        );
        assert!(xs.iter().all(|x| *x > 0.0));
        let (m, _, xs) = moments(Distribution::Pareto);
        assert!((m - 100.0).abs() < 5.0, "{m}");
        let scale = xs.iter().cloned().fold(f64::MAX, f64::min);
        assert!(scale > 50.0 && xs.iter().any(|x| *x > 250.0), "{scale}");
    }

    #[test]
    fn no_jitter_is_exact_and_toxiproxy_form_is_default() {
        let mut rng = Rng::new(1);
        let l = Latency {
            latency: 30,
            jitter: 0,
            distribution: Some(Distribution::Pareto),
        };
        assert_eq!(l.sample(&mut rng), Duration::from_millis(30));
        let json = serde_json::to_value(Latency::default()).unwrap();
        assert_eq!(json, serde_json::json!({"latency": 0, "jitter": 0}));
    }
}
