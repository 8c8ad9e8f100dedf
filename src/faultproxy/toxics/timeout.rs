//! `timeout`: drops every byte; closes the connection `timeout` ms after the
//! toxic started on it, or never when `timeout` is 0. As in Toxiproxy,
//! removing the toxic closes the connections it was holding (its `Cleanup`),
//! and updating it restarts the clock.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ms, Attributes, ToxicKind};
use crate::faultproxy::chain::{Behaviour, CloseKind, Ev, Queue};
use crate::faultproxy::rng::Rng;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeout {
    /// Milliseconds; 0 holds the connection open forever.
    pub timeout: i64,
}

impl Attributes for Timeout {
    const FIELDS: &'static [&'static str] = &["timeout"];
}

pub struct TimeoutLink {
    timeout: i64,
}

impl TimeoutLink {
    pub fn new(attrs: &Timeout) -> Self {
        TimeoutLink {
            timeout: attrs.timeout,
        }
    }
}

fn close_now(at: Instant, kind: CloseKind, out: &mut Queue) {
    out.clear();
    out.push(at, Ev::Close(kind));
}

impl Behaviour for TimeoutLink {
    fn configure(&mut self, kind: &ToxicKind) {
        if let ToxicKind::Timeout(a) = kind {
            self.timeout = a.timeout;
        }
    }

    fn start(&mut self, now: Instant, out: &mut Queue) {
        if self.timeout > 0 {
            out.push(now + ms(self.timeout), Ev::Close(CloseKind::Graceful));
        }
    }

    fn admit(&mut self, at: Instant, ev: Ev, _rng: &mut Rng, out: &mut Queue) {
        match ev {
            Ev::Eof => close_now(at, CloseKind::Graceful, out),
            Ev::Close(kind) => close_now(at, kind, out),
            Ev::Data(_) | Ev::Reply { .. } => {} // dropped on the floor
        }
    }

    fn interrupt(&mut self, _now: Instant, out: &mut Queue) {
        out.clear();
    }

    fn remove(&mut self, now: Instant, out: &mut Queue) {
        close_now(now, CloseKind::Graceful, out);
    }
}
