//! `noop`: passes everything through. Toxiproxy registers it, so it can be
//! created through the API like any other toxic.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Attributes, ToxicKind};
use crate::faultproxy::chain::{Behaviour, Ev, Queue};
use crate::faultproxy::rng::Rng;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Noop {}

impl Attributes for Noop {
    const FIELDS: &'static [&'static str] = &[];
}

pub struct NoopLink;

impl Behaviour for NoopLink {
    fn configure(&mut self, _kind: &ToxicKind) {}

    fn admit(&mut self, at: Instant, ev: Ev, _rng: &mut Rng, out: &mut Queue) {
        out.push(at, ev);
    }
}
