//! `reset_peer`: on the first bytes (or close) from the source, waits
//! `timeout` ms and resets the connection: SO_LINGER 0, so both peers get a
//! TCP RST ("connection reset by peer"). The bytes are dropped.
//!
//! Unlike Toxiproxy, the sockets get SO_LINGER 0 only when the toxic fires,
//! not whenever a `reset_peer` toxic is in the chain (Toxiproxy issue #603:
//! it resets connections even at toxicity 0).

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ms, Attributes, ToxicKind};
use crate::faultproxy::chain::{Behaviour, CloseKind, Ev, Queue};
use crate::faultproxy::rng::Rng;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResetPeer {
    /// Milliseconds between the first bytes and the reset.
    pub timeout: i64,
}

impl Attributes for ResetPeer {
    const FIELDS: &'static [&'static str] = &["timeout"];
}

pub struct ResetPeerLink {
    timeout: i64,
    fired: bool,
}

impl ResetPeerLink {
    pub fn new(attrs: &ResetPeer) -> Self {
        ResetPeerLink {
            timeout: attrs.timeout,
            fired: false,
        }
    }
}

impl Behaviour for ResetPeerLink {
    fn configure(&mut self, kind: &ToxicKind) {
        if let ToxicKind::ResetPeer(a) = kind {
            self.timeout = a.timeout;
        }
    }

    fn admit(&mut self, at: Instant, _ev: Ev, _rng: &mut Rng, out: &mut Queue) {
        if !self.fired {
            self.fired = true;
            out.push(at + ms(self.timeout), Ev::Close(CloseKind::Reset));
        }
    }

    /// A reset on its way cannot be called back (nor can it in Toxiproxy).
    fn interrupt(&mut self, _now: Instant, _out: &mut Queue) {}
}
