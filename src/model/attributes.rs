//! The handful of span and resource attributes the graph needs.
//!
//! Receivers see every attribute but keep only these, so a span costs a few
//! optional strings instead of a map: the graph never looks anything else up.

use super::semconv as sc;

/// A typed attribute value as receivers hand it over. Only strings and
/// integers matter to the graph; other types are ignored by [`Attributes::set`].
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
}

/// The semantic-convention attributes the graph, naming rules and operators use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub peer_service: Option<String>,
    pub server_address: Option<String>,
    pub network_peer_address: Option<String>,
    pub network_peer_port: Option<String>,
    pub db_system: Option<String>,
    pub db_system_name: Option<String>,
    pub db_name: Option<String>,
    pub db_namespace: Option<String>,
    pub messaging_system: Option<String>,
    pub messaging_destination: Option<String>,
    pub messaging_message_id: Option<String>,
    pub http_status_code: Option<i64>,
    pub rpc_grpc_status_code: Option<i64>,
    pub http_resend_count: Option<i64>,
    /// The message's ordering key: `messaging.kafka.message.key`, else its
    /// partition (`messaging.destination.partition.id`).
    pub messaging_key: Option<String>,
    pub messaging_partition: Option<String>,
    /// Set when `error.type`, `exception.type`, an exception event or the
    /// status message says the call timed out.
    pub timed_out: bool,
}

/// Every key [`Attributes::set`] keeps, for [`Attributes::may_keep`].
const KEPT: [&str; 21] = [
    sc::HTTP_STATUS_CODE,
    sc::HTTP_STATUS_CODE_LEGACY,
    sc::RPC_GRPC_STATUS_CODE,
    sc::HTTP_RESEND_COUNT,
    sc::ERROR_TYPE,
    sc::EXCEPTION_TYPE,
    sc::PEER_SERVICE,
    sc::SERVER_ADDRESS,
    sc::NETWORK_PEER_ADDRESS,
    sc::NETWORK_PEER_PORT,
    sc::DB_SYSTEM,
    sc::DB_SYSTEM_NAME,
    sc::DB_NAME,
    sc::DB_NAMESPACE,
    sc::MESSAGING_SYSTEM,
    sc::MESSAGING_DESTINATION,
    sc::MESSAGING_DESTINATION_LEGACY,
    sc::MESSAGING_MESSAGE_ID,
    sc::MESSAGING_KAFKA_KEY,
    sc::MESSAGING_PARTITION,
    sc::MESSAGING_KAFKA_PARTITION_LEGACY,
];

/// Bit `b` of word `b / 64` is set when some kept key starts with byte `b`.
const FIRST_BYTES: [u64; 4] = {
    let mut bits = [0u64; 4];
    let mut i = 0;
    while i < KEPT.len() {
        let b = KEPT[i].as_bytes()[0] as usize;
        bits[b / 64] |= 1 << (b % 64);
        i += 1;
    }
    bits
};

/// The shortest and longest kept keys.
const KEY_LENGTHS: (usize, usize) = {
    let (mut min, mut max, mut i) = (usize::MAX, 0, 0);
    while i < KEPT.len() {
        let n = KEPT[i].len();
        if n < min {
            min = n;
        }
        if n > max {
            max = n;
        }
        i += 1;
    }
    (min, max)
};

impl Attributes {
    /// False for most keys the graph does not read, by their length and
    /// first byte alone: a span's attributes are mostly not the graph's,
    /// and this spares each of them the string match of [`Attributes::set`].
    /// True does not mean kept; `set` decides.
    #[inline(always)]
    pub fn may_keep(key: &str) -> bool {
        let (min, max) = KEY_LENGTHS;
        match key.as_bytes().first() {
            Some(&b) if (min..=max).contains(&key.len()) => {
                FIRST_BYTES[usize::from(b) / 64] & (1 << (b % 64)) != 0
            }
            _ => false,
        }
    }

    /// Keeps `value` if `key` is one the graph reads. Returns whether it was kept.
    pub fn set(&mut self, key: &str, value: Value<'_>) -> bool {
        let kept = self.set_known(key, value);
        // Every receiver's tests pass through here: a key kept below but
        // missing from `KEPT` would be dropped unseen by the fast decoder.
        debug_assert!(
            !kept || Self::may_keep(key),
            "{key:?} is kept but not in KEPT"
        );
        kept
    }

    fn set_known(&mut self, key: &str, value: Value<'_>) -> bool {
        match key {
            sc::HTTP_STATUS_CODE | sc::HTTP_STATUS_CODE_LEGACY => {
                self.http_status_code = value.as_int();
                true
            }
            sc::RPC_GRPC_STATUS_CODE => {
                self.rpc_grpc_status_code = value.as_int();
                true
            }
            sc::HTTP_RESEND_COUNT => {
                self.http_resend_count = value.as_int();
                true
            }
            sc::ERROR_TYPE | sc::EXCEPTION_TYPE => {
                if let Value::Str(text) = value {
                    self.note_error_text(text);
                }
                true
            }
            _ => match self.string_slot(key) {
                Some(slot) => {
                    *slot = Some(value.to_string_value());
                    true
                }
                None => false,
            },
        }
    }

    fn string_slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key {
            sc::PEER_SERVICE => &mut self.peer_service,
            sc::SERVER_ADDRESS => &mut self.server_address,
            sc::NETWORK_PEER_ADDRESS => &mut self.network_peer_address,
            sc::NETWORK_PEER_PORT => &mut self.network_peer_port,
            sc::DB_SYSTEM => &mut self.db_system,
            sc::DB_SYSTEM_NAME => &mut self.db_system_name,
            sc::DB_NAME => &mut self.db_name,
            sc::DB_NAMESPACE => &mut self.db_namespace,
            sc::MESSAGING_SYSTEM => &mut self.messaging_system,
            sc::MESSAGING_DESTINATION | sc::MESSAGING_DESTINATION_LEGACY => {
                &mut self.messaging_destination
            }
            sc::MESSAGING_MESSAGE_ID => &mut self.messaging_message_id,
            sc::MESSAGING_KAFKA_KEY => &mut self.messaging_key,
            sc::MESSAGING_PARTITION | sc::MESSAGING_KAFKA_PARTITION_LEGACY => {
                &mut self.messaging_partition
            }
            _ => return None,
        })
    }

    /// Marks the span as timed out if `text` (an error type, exception type
    /// or status message) names a timeout: `DEADLINE_EXCEEDED`,
    /// `SocketTimeoutException`, `context deadline exceeded`, `timed out`…
    pub fn note_error_text(&mut self, text: &str) {
        if !self.timed_out && names_timeout(text) {
            self.timed_out = true;
        }
    }

    /// Fills every attribute still unset from `other` (the resource's
    /// attributes): a span's own value always wins over its resource's.
    pub fn fill_from(&mut self, other: &Attributes) {
        fn fill<T: Clone>(slot: &mut Option<T>, from: &Option<T>) {
            if slot.is_none() {
                slot.clone_from(from);
            }
        }
        fill(&mut self.peer_service, &other.peer_service);
        fill(&mut self.server_address, &other.server_address);
        fill(&mut self.network_peer_address, &other.network_peer_address);
        fill(&mut self.network_peer_port, &other.network_peer_port);
        fill(&mut self.db_system, &other.db_system);
        fill(&mut self.db_system_name, &other.db_system_name);
        fill(&mut self.db_name, &other.db_name);
        fill(&mut self.db_namespace, &other.db_namespace);
        fill(&mut self.messaging_system, &other.messaging_system);
        fill(
            &mut self.messaging_destination,
            &other.messaging_destination,
        );
    }

    /// True when any attribute says the span talks to a database or cache.
    pub fn is_database(&self) -> bool {
        self.db_system.is_some()
            || self.db_system_name.is_some()
            || self.db_name.is_some()
            || self.db_namespace.is_some()
    }

    /// True when the resource carries any attribute [`Attributes::fill_from`] copies.
    pub fn is_empty(&self) -> bool {
        *self == Attributes::default()
    }
}

fn names_timeout(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["timeout", "timed out", "timedout", "deadline"]
        .iter()
        .any(|w| lower.contains(w))
}

impl Value<'_> {
    fn as_int(self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(i),
            Value::Str(s) => s.trim().parse().ok(),
        }
    }

    fn to_string_value(self) -> String {
        match self {
            Value::Str(s) => s.to_owned(),
            Value::Int(i) => i.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_known_keys_and_ignores_the_rest() {
        let mut a = Attributes::default();
        assert!(a.set("db.system", Value::Str("redis")));
        assert!(a.set("http.status_code", Value::Str("503")));
        assert!(a.set("network.peer.port", Value::Int(5432)));
        assert!(!a.set("beast", Value::Str("manticore")));
        assert_eq!(a.db_system.as_deref(), Some("redis"));
        assert_eq!(a.http_status_code, Some(503));
        assert_eq!(a.network_peer_port.as_deref(), Some("5432"));
        assert!(a.is_database());
    }

    #[test]
    fn the_prefilter_passes_every_kept_key() {
        for key in KEPT {
            assert!(Attributes::may_keep(key), "{key}");
            assert!(Attributes::default().set(key, Value::Str("1")), "{key}");
        }
        for key in ["attr.0", "", "x", "thread.id", "code.function.name"] {
            assert!(!Attributes::may_keep(key), "{key}");
        }
    }

    #[test]
    fn timeouts_from_error_and_exception_types() {
        let mut a = Attributes::default();
        a.set("error.type", Value::Str("java.net.ConnectException"));
        assert!(!a.timed_out);
        a.set(
            "exception.type",
            Value::Str("java.net.SocketTimeoutException"),
        );
        assert!(a.timed_out);
        let mut b = Attributes::default();
        b.note_error_text("context deadline exceeded");
        assert!(b.timed_out);
    }

    #[test]
    fn span_values_win_over_resource_values() {
        let mut span = Attributes::default();
        span.set("db.name", Value::Str("orders"));
        let mut res = Attributes::default();
        res.set("db.name", Value::Str("other"));
        res.set("db.system", Value::Str("postgresql"));
        span.fill_from(&res);
        assert_eq!(span.db_name.as_deref(), Some("orders"));
        assert_eq!(span.db_system.as_deref(), Some("postgresql"));
    }
}
