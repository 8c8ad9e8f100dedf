//! `limit_data`: lets `bytes` bytes through on each connection and direction,
//! then closes the connection. The count survives updates of the toxic, as
//! Toxiproxy's per-link state does.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Attributes, ToxicKind};
use crate::faultproxy::chain::{Behaviour, CloseKind, Ev, Queue};
use crate::faultproxy::rng::Rng;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitData {
    pub bytes: i64,
}

impl Attributes for LimitData {
    const FIELDS: &'static [&'static str] = &["bytes"];
}

pub struct LimitDataLink {
    limit: i64,
    sent: i64,
    closed: bool,
}

impl LimitDataLink {
    pub fn new(attrs: &LimitData) -> Self {
        LimitDataLink {
            limit: attrs.bytes,
            sent: 0,
            closed: false,
        }
    }
}

impl Behaviour for LimitDataLink {
    fn configure(&mut self, kind: &ToxicKind) {
        if let ToxicKind::LimitData(a) = kind {
            self.limit = a.bytes;
        }
    }

    fn admit(&mut self, at: Instant, ev: Ev, _rng: &mut Rng, out: &mut Queue) {
        let Ev::Data(mut data) = ev else {
            return out.push(at, ev);
        };
        if self.closed {
            return;
        }
        let remaining = (self.limit - self.sent).max(0) as usize;
        data.truncate(remaining);
        self.sent += data.len() as i64;
        if !data.is_empty() {
            out.push(at, Ev::Data(data));
        }
        if self.limit - self.sent <= 0 {
            self.closed = true;
            out.push(at, Ev::Close(CloseKind::Graceful));
        }
    }
}
