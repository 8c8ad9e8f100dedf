//! `bandwidth`: at most `rate` KB/s (1 KB = 1000 bytes, as in Toxiproxy),
//! sent in slices of `rate`×100 bytes so the stream flows every 100 ms
//! instead of in bursts. A rate of 0 or less stalls the stream, as it does
//! in Toxiproxy (whose loop never makes progress then).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Attributes, ToxicKind};
use crate::faultproxy::chain::{never, Behaviour, Ev, Queue};
use crate::faultproxy::rng::Rng;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bandwidth {
    /// KB/s.
    pub rate: i64,
}

impl Attributes for Bandwidth {
    const FIELDS: &'static [&'static str] = &["rate"];
}

pub struct BandwidthLink {
    rate: i64,
}

impl BandwidthLink {
    pub fn new(attrs: &Bandwidth) -> Self {
        BandwidthLink { rate: attrs.rate }
    }

    /// How long `len` bytes take at the rate.
    fn time_for(&self, len: usize) -> Duration {
        Duration::from_nanos(len as u64 * 1_000_000 / self.rate as u64)
    }
}

impl Behaviour for BandwidthLink {
    fn configure(&mut self, kind: &ToxicKind) {
        if let ToxicKind::Bandwidth(a) = kind {
            self.rate = a.rate;
        }
    }

    fn admit(&mut self, at: Instant, ev: Ev, _rng: &mut Rng, out: &mut Queue) {
        let Ev::Data(mut data) = ev else {
            return out.push(at, ev);
        };
        if self.rate <= 0 {
            return out.push(never(at), Ev::Data(data));
        }
        let slice = (self.rate as usize).saturating_mul(100);
        let mut t = out.last().map_or(at, |l| l.max(at));
        while !data.is_empty() {
            let piece = data.split_to(slice.min(data.len()));
            t += self.time_for(piece.len());
            out.push(t, Ev::Data(piece));
        }
    }
}
