//! `slow_close`: data passes; when the source closes, the close reaches the
//! other side only `delay` ms later.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ms, Attributes, ToxicKind};
use crate::faultproxy::chain::{Behaviour, Ev, Queue};
use crate::faultproxy::rng::Rng;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlowClose {
    /// Milliseconds.
    pub delay: i64,
}

impl Attributes for SlowClose {
    const FIELDS: &'static [&'static str] = &["delay"];
}

pub struct SlowCloseLink {
    delay: i64,
}

impl SlowCloseLink {
    pub fn new(attrs: &SlowClose) -> Self {
        SlowCloseLink { delay: attrs.delay }
    }
}

impl Behaviour for SlowCloseLink {
    fn configure(&mut self, kind: &ToxicKind) {
        if let ToxicKind::SlowClose(a) = kind {
            self.delay = a.delay;
        }
    }

    fn admit(&mut self, at: Instant, ev: Ev, _rng: &mut Rng, out: &mut Queue) {
        let at = match ev {
            Ev::Eof => at + ms(self.delay),
            _ => at,
        };
        out.push(at, ev);
    }
}
