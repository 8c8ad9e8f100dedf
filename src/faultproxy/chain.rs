//! What happens to the bytes of one link (one connection, one direction):
//! they pass through the toxics of that direction, in the order they were
//! added, as Toxiproxy chains them.
//!
//! Toxiproxy runs one goroutine per toxic joined by channels. Here one task
//! per link runs the whole chain on a timeline instead: every event carries
//! the instant it may leave the toxic that holds it, each toxic keeps a
//! queue ordered by that instant, and the link's pump sleeps until the next
//! one is due. So bytes never overtake each other, a latency toxic keeps
//! delaying each chunk from the moment it was read (as Toxiproxy's does),
//! and every random draw comes from a seeded generator.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::rng::{derive, Rng};
use super::toxics::{ToxicDef, ToxicKind};

/// How a connection is torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// A normal close (FIN).
    Graceful,
    /// SO_LINGER 0, so both peers get a TCP RST ("connection reset by peer").
    Reset,
}

/// What flows through a link.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Data(Bytes),
    /// The source closed its side: the destination gets a FIN for this direction.
    Eof,
    /// Tear the whole connection down.
    Close(CloseKind),
    /// An answer for the client produced by a toxic on the upstream stream
    /// (the HTTP toxic's abort); `close` ends the connection after it.
    Reply {
        bytes: Bytes,
        close: bool,
    },
}

impl Ev {
    fn len(&self) -> usize {
        match self {
            Ev::Data(b) | Ev::Reply { bytes: b, .. } => b.len(),
            _ => 0,
        }
    }
}

/// An event and the instant it may move on.
#[derive(Debug, Clone)]
pub struct Timed {
    pub at: Instant,
    pub ev: Ev,
}

/// A time far enough ahead to mean "never" (bandwidth 0 stalls a stream).
pub fn never(now: Instant) -> Instant {
    now + Duration::from_secs(10 * 365 * 86_400)
}

/// A toxic's output queue: events leave in order, never before `at`.
#[derive(Debug, Default)]
pub struct Queue {
    items: VecDeque<Timed>,
    last: Option<Instant>,
    bytes: usize,
}

impl Queue {
    /// Queues `ev` to leave at `at`, or after the previous event if later.
    pub fn push(&mut self, at: Instant, ev: Ev) {
        let at = self.last.map_or(at, |l| at.max(l));
        self.last = Some(at);
        self.bytes += ev.len();
        self.items.push_back(Timed { at, ev });
    }

    /// When the latest queued event leaves (it may have left already).
    pub fn last(&self) -> Option<Instant> {
        self.last
    }

    /// Nothing queued later may leave before `at`.
    pub fn hold_until(&mut self, at: Instant) {
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
    }

    /// Everything held may leave now: what a toxic does when interrupted,
    /// since Toxiproxy never drops bytes on the floor there.
    pub fn release(&mut self, now: Instant) {
        for t in &mut self.items {
            t.at = t.at.min(now);
        }
        self.last = self.last.map(|l| l.min(now));
    }

    /// Drops everything queued; later events are no longer held behind it.
    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
        self.last = None;
    }

    fn pop_ready(&mut self, now: Instant) -> Option<Timed> {
        if self.items.front()?.at > now {
            return None;
        }
        let t = self.items.pop_front()?;
        self.bytes -= t.ev.len();
        Some(t)
    }

    fn next_at(&self) -> Option<Instant> {
        self.items.front().map(|t| t.at)
    }

    fn take_all(&mut self, now: Instant) -> Vec<Timed> {
        self.release(now);
        self.bytes = 0;
        self.items.drain(..).collect()
    }
}

/// One toxic's behaviour on one link, holding that link's state for it.
pub trait Behaviour: Send {
    /// New attributes from an update; per-link state (bytes counted, a
    /// request half parsed) is kept.
    fn configure(&mut self, kind: &ToxicKind);
    /// The toxic starts running on the link (link opened, toxic added or updated).
    fn start(&mut self, _now: Instant, _out: &mut Queue) {}
    /// An event reaches the toxic at `at`.
    fn admit(&mut self, at: Instant, ev: Ev, rng: &mut Rng, out: &mut Queue);
    /// The toxic stops (it is being updated): by default held bytes move on now.
    fn interrupt(&mut self, now: Instant, out: &mut Queue) {
        out.release(now);
    }
    /// The toxic is removed from a live link (Toxiproxy's `Cleanup`).
    fn remove(&mut self, _now: Instant, _out: &mut Queue) {}
}

/// A toxic installed on a link.
struct Stage {
    def: Arc<ToxicDef>,
    /// The per-connection toxicity draw: when false the toxic passes everything.
    active: bool,
    behaviour: Box<dyn Behaviour>,
    queue: Queue,
    rng: Rng,
}

impl Stage {
    fn new(def: Arc<ToxicDef>, link_seed: u64, now: Instant) -> Stage {
        let rng = Rng::new(derive(link_seed, &[def.name.as_bytes()]));
        let mut stage = Stage {
            behaviour: def.kind.behaviour(),
            def,
            active: false,
            queue: Queue::default(),
            rng,
        };
        stage.begin(now);
        stage
    }

    /// Draws toxicity, as Toxiproxy does each time a toxic starts on a link.
    fn begin(&mut self, now: Instant) {
        self.active = (self.rng.next_f64() as f32) < self.def.toxicity;
        if self.active {
            self.behaviour.start(now, &mut self.queue);
        }
    }

    fn admit(&mut self, t: Timed) {
        if self.active {
            self.behaviour
                .admit(t.at, t.ev, &mut self.rng, &mut self.queue);
        } else {
            self.queue.push(t.at, t.ev);
        }
    }

    fn reconfigure(&mut self, def: Arc<ToxicDef>, now: Instant) {
        if self.active {
            self.behaviour.interrupt(now, &mut self.queue);
        }
        self.behaviour.configure(&def.kind);
        self.def = def;
        self.begin(now);
    }

    /// Removes the toxic: what it held moves on now.
    fn remove(mut self, now: Instant) -> Vec<Timed> {
        if self.active {
            self.behaviour.remove(now, &mut self.queue);
        }
        self.queue.take_all(now)
    }
}

/// The toxics of one link.
pub struct Pipeline {
    stages: Vec<Stage>,
    link_seed: u64,
    inbox: Vec<Timed>,
}

impl Pipeline {
    pub fn new(link_seed: u64) -> Pipeline {
        Pipeline {
            stages: Vec::new(),
            link_seed,
            inbox: Vec::new(),
        }
    }

    /// An event read from the source at `at`.
    pub fn admit(&mut self, at: Instant, ev: Ev) {
        self.inbox.push(Timed { at, ev });
    }

    /// Moves every due event on; returns those that leave the chain.
    pub fn advance(&mut self, now: Instant) -> Vec<Ev> {
        let mut carry = std::mem::take(&mut self.inbox);
        for stage in &mut self.stages {
            for t in carry.drain(..) {
                stage.admit(t);
            }
            while let Some(t) = stage.queue.pop_ready(now) {
                carry.push(t);
            }
        }
        carry.into_iter().map(|t| t.ev).collect()
    }

    /// When the next held event is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.stages.iter().filter_map(|s| s.queue.next_at()).min()
    }

    /// Bytes held by the toxics: reading pauses above a cap (backpressure).
    pub fn held_bytes(&self) -> usize {
        self.stages.iter().map(|s| s.queue.bytes).sum()
    }

    /// Brings the link's toxics in line with `chain`: keeps those still
    /// there (reconfiguring updated ones), removes the others (what they
    /// held moves on to the next toxic) and appends new ones. Returns the
    /// events that leave the chain at once.
    pub fn reconcile(&mut self, chain: &[Arc<ToxicDef>], now: Instant) -> Vec<Ev> {
        let mut kept: Vec<Stage> = Vec::with_capacity(chain.len());
        let mut moving: Vec<Timed> = Vec::new();
        for mut stage in std::mem::take(&mut self.stages) {
            match chain.iter().find(|d| d.id == stage.def.id) {
                Some(def) => {
                    if !Arc::ptr_eq(def, &stage.def) {
                        stage.reconfigure(def.clone(), now);
                    }
                    moving.drain(..).for_each(|t| stage.admit(t));
                    kept.push(stage);
                }
                None => moving.extend(stage.remove(now)),
            }
        }
        for def in chain {
            if !kept.iter().any(|s| s.def.id == def.id) {
                let mut stage = Stage::new(def.clone(), self.link_seed, now);
                moving.drain(..).for_each(|t| stage.admit(t));
                kept.push(stage);
            }
        }
        self.stages = kept;
        moving.into_iter().map(|t| t.ev).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faultproxy::toxics::{latency::Latency, limit_data::LimitData, timeout::Timeout};
    use crate::faultproxy::toxics::{Direction, ToxicKind};

    fn def(id: u64, kind: ToxicKind, toxicity: f32) -> Arc<ToxicDef> {
        Arc::new(ToxicDef {
            id,
            name: format!("t{id}"),
            stream: "downstream".into(),
            direction: Direction::Downstream,
            toxicity,
            kind,
        })
    }

    fn data(s: &'static str) -> Ev {
        Ev::Data(Bytes::from_static(s.as_bytes()))
    }

    fn latency(ms: i64) -> ToxicKind {
        ToxicKind::Latency(Latency {
            latency: ms,
            ..Latency::default()
        })
    }

    #[test]
    fn latency_holds_in_order_and_removal_releases() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut p = Pipeline::new(1);
        assert!(p.reconcile(&[def(1, latency(1000), 1.0)], t0).is_empty());
        p.admit(t0, data("a"));
        assert!(p.advance(t0).is_empty());
        assert_eq!(p.next_at(), Some(t0 + s));
        p.admit(t0 + s / 2, data("b"));
        assert_eq!(p.advance(t0 + s), vec![data("a")]);
        assert_eq!(p.held_bytes(), 1);
        // Removing the toxic lets what it held go at once.
        assert_eq!(p.reconcile(&[], t0 + s), vec![data("b")]);
        p.admit(t0 + s, data("c"));
        assert_eq!(p.advance(t0 + s), vec![data("c")]);
    }

    #[test]
    fn an_update_restarts_with_new_attributes_and_zero_toxicity_passes() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(2);
        let slow = def(1, latency(10_000), 1.0);
        p.reconcile(std::slice::from_ref(&slow), t0);
        p.admit(t0, data("a"));
        assert!(p.advance(t0).is_empty());
        let off = Arc::new(ToxicDef {
            toxicity: 0.0,
            ..(*slow).clone()
        });
        p.reconcile(&[off], t0);
        p.admit(t0, data("b"));
        assert_eq!(p.advance(t0), vec![data("a"), data("b")]);
    }

    #[test]
    fn limit_data_then_timeout_removal_close_the_connection() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(3);
        let limit = def(1, ToxicKind::LimitData(LimitData { bytes: 3 }), 1.0);
        p.reconcile(&[limit], t0);
        p.admit(t0, data("hello"));
        let closed = vec![data("hel"), Ev::Close(CloseKind::Graceful)];
        assert_eq!(p.advance(t0), closed);

        let mut p = Pipeline::new(3);
        let hold = def(2, ToxicKind::Timeout(Timeout { timeout: 0 }), 1.0);
        p.reconcile(&[hold], t0);
        p.admit(t0, data("dropped"));
        assert!(p.advance(t0).is_empty() && p.next_at().is_none());
        assert_eq!(p.reconcile(&[], t0), vec![Ev::Close(CloseKind::Graceful)]);
    }
}
