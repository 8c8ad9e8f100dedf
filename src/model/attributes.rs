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
///
/// The string values sit side by side in one buffer, each slot a range of
/// it. Why not an `Option<String>` per attribute: every span carries this
/// struct through the receivers' batches and the shards' queues, and
/// thirteen inline strings made it 368 bytes of a 472-byte span, though a
/// span sets two or three of them (or none). Now it is 128 bytes (the span
/// 232), a batch of 512 spans is 119 KB instead of 242, and a span with
/// several of these attributes makes one allocation for all.
#[derive(Clone, Default)]
pub struct Attributes {
    /// The kept string values, back to back (a value set twice leaves its
    /// first text unused).
    text: String,
    /// Per [`Text`] slot: its value's `(start, end)` in `text`. 16 bits,
    /// because a span keeps a few short names and addresses: 56 bytes
    /// less per span than with 32-bit offsets (see [`Attributes::set_text`]
    /// for what longer text does).
    ranges: [(u16, u16); TEXT_SLOTS],
    /// Bit `slot` is set when the slot holds a value.
    present: u16,
    pub http_status_code: Option<i64>,
    pub rpc_grpc_status_code: Option<i64>,
    pub http_resend_count: Option<i64>,
    /// Set when `error.type`, `exception.type`, an exception event or the
    /// status message says the call timed out.
    pub timed_out: bool,
}

/// The string attributes [`Attributes`] keeps, one slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    PeerService,
    ServerAddress,
    NetworkPeerAddress,
    NetworkPeerPort,
    DbSystem,
    DbSystemName,
    DbName,
    DbNamespace,
    MessagingSystem,
    MessagingDestination,
    MessagingMessageId,
    /// The message's ordering key: `messaging.kafka.message.key`.
    MessagingKey,
    /// `messaging.destination.partition.id`, the ordering key without a key.
    MessagingPartition,
}

const TEXT_SLOTS: usize = 13;

/// Slots [`Attributes::fill_from`] copies from the resource: the first
/// ten, all but a message's id, key and partition.
const FILLED: &[Text] = ALL_TEXT.split_at(10).0;

/// `pub fn name(&self) -> Option<&str>` for each slot.
macro_rules! text_getters {
    ($($(#[$doc:meta])* $name:ident => $slot:ident,)*) => {
        impl Attributes {
            $($(#[$doc])* pub fn $name(&self) -> Option<&str> {
                self.text(Text::$slot)
            })*
        }
    };
}

text_getters! {
    peer_service => PeerService,
    server_address => ServerAddress,
    network_peer_address => NetworkPeerAddress,
    network_peer_port => NetworkPeerPort,
    db_system => DbSystem,
    db_system_name => DbSystemName,
    db_name => DbName,
    db_namespace => DbNamespace,
    messaging_system => MessagingSystem,
    messaging_destination => MessagingDestination,
    messaging_message_id => MessagingMessageId,
    /// `messaging.kafka.message.key` (the shard falls back on the partition).
    messaging_key => MessagingKey,
    messaging_partition => MessagingPartition,
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
            _ => match text_slot(key) {
                Some(slot) => {
                    match value {
                        Value::Str(text) => self.set_text(slot, text),
                        Value::Int(i) => self.set_text(slot, &i.to_string()),
                    }
                    true
                }
                None => false,
            },
        }
    }

    fn text(&self, slot: Text) -> Option<&str> {
        if self.present & (1 << slot as u16) == 0 {
            return None;
        }
        let (start, end) = self.ranges[slot as usize];
        Some(&self.text[start as usize..end as usize])
    }

    fn set_text(&mut self, slot: Text, value: &str) {
        // Offsets are u16: past 64 KiB of kept text in one span the value
        // is not kept rather than misread. No real span comes near: these
        // are service names, host names, ports, database and queue names
        // and message ids.
        let start = self.text.len();
        let Ok(end) = u16::try_from(start + value.len()) else {
            return;
        };
        if self.text.capacity() == 0 {
            // Room for the two or three values a span usually keeps at once.
            self.text.reserve(value.len().max(48));
        }
        self.text.push_str(value);
        self.ranges[slot as usize] = (start as u16, end);
        self.present |= 1 << slot as u16;
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
        for &slot in FILLED {
            if let (None, Some(value)) = (self.text(slot), other.text(slot)) {
                self.set_text(slot, value);
            }
        }
    }

    /// True when any attribute says the span talks to a database or cache.
    pub fn is_database(&self) -> bool {
        let db = [
            Text::DbSystem,
            Text::DbSystemName,
            Text::DbName,
            Text::DbNamespace,
        ];
        db.iter()
            .any(|&slot| self.present & (1 << slot as u16) != 0)
    }

    /// True when the resource carries any attribute [`Attributes::fill_from`] copies.
    pub fn is_empty(&self) -> bool {
        *self == Attributes::default()
    }
}

/// The slot of a kept string attribute's key.
fn text_slot(key: &str) -> Option<Text> {
    Some(match key {
        sc::PEER_SERVICE => Text::PeerService,
        sc::SERVER_ADDRESS => Text::ServerAddress,
        sc::NETWORK_PEER_ADDRESS => Text::NetworkPeerAddress,
        sc::NETWORK_PEER_PORT => Text::NetworkPeerPort,
        sc::DB_SYSTEM => Text::DbSystem,
        sc::DB_SYSTEM_NAME => Text::DbSystemName,
        sc::DB_NAME => Text::DbName,
        sc::DB_NAMESPACE => Text::DbNamespace,
        sc::MESSAGING_SYSTEM => Text::MessagingSystem,
        sc::MESSAGING_DESTINATION | sc::MESSAGING_DESTINATION_LEGACY => Text::MessagingDestination,
        sc::MESSAGING_MESSAGE_ID => Text::MessagingMessageId,
        sc::MESSAGING_KAFKA_KEY => Text::MessagingKey,
        sc::MESSAGING_PARTITION | sc::MESSAGING_KAFKA_PARTITION_LEGACY => Text::MessagingPartition,
        _ => return None,
    })
}

/// Every slot, in order, for comparing and printing.
const ALL_TEXT: [Text; TEXT_SLOTS] = [
    Text::PeerService,
    Text::ServerAddress,
    Text::NetworkPeerAddress,
    Text::NetworkPeerPort,
    Text::DbSystem,
    Text::DbSystemName,
    Text::DbName,
    Text::DbNamespace,
    Text::MessagingSystem,
    Text::MessagingDestination,
    Text::MessagingMessageId,
    Text::MessagingKey,
    Text::MessagingPartition,
];

/// Equal when every attribute is, however the text buffer is laid out.
impl PartialEq for Attributes {
    fn eq(&self, other: &Attributes) -> bool {
        ALL_TEXT.iter().all(|&t| self.text(t) == other.text(t))
            && self.http_status_code == other.http_status_code
            && self.rpc_grpc_status_code == other.rpc_grpc_status_code
            && self.http_resend_count == other.http_resend_count
            && self.timed_out == other.timed_out
    }
}

impl Eq for Attributes {}

impl std::fmt::Debug for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Attributes");
        for slot in ALL_TEXT {
            if let Some(value) = self.text(slot) {
                d.field(&format!("{slot:?}"), &value);
            }
        }
        d.field("http_status_code", &self.http_status_code)
            .field("rpc_grpc_status_code", &self.rpc_grpc_status_code)
            .field("http_resend_count", &self.http_resend_count)
            .field("timed_out", &self.timed_out)
            .finish()
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
        assert_eq!(a.db_system(), Some("redis"));
        assert_eq!(a.http_status_code, Some(503));
        assert_eq!(a.network_peer_port(), Some("5432"));
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
    fn text_values_share_one_buffer_and_the_last_set_wins() {
        let mut a = Attributes::default();
        a.set("server.address", Value::Str("db-1"));
        a.set("peer.service", Value::Str(""));
        a.set("server.address", Value::Str("db-2"));
        assert_eq!(a.server_address(), Some("db-2"));
        assert_eq!(a.peer_service(), Some(""), "an empty value is still set");
        assert_eq!(a.db_name(), None);
        // The same values set in another order compare equal.
        let mut b = Attributes::default();
        b.set("peer.service", Value::Str(""));
        b.set("server.address", Value::Str("db-2"));
        assert_eq!(a, b);
        b.set("db.name", Value::Str("orders"));
        assert_ne!(a, b);
        assert!(
            std::mem::size_of::<Attributes>() <= 128,
            "{} bytes",
            std::mem::size_of::<Attributes>()
        );
    }

    #[test]
    fn text_past_64_kib_is_not_kept_and_nothing_else_moves() {
        let mut a = Attributes::default();
        a.set("server.address", Value::Str("db-2"));
        let huge = "x".repeat(70_000);
        a.set("peer.service", Value::Str(&huge));
        assert_eq!(a.peer_service(), None, "too long to keep");
        assert_eq!(a.server_address(), Some("db-2"));
        let near = "y".repeat(usize::from(u16::MAX) - 4);
        a.set("db.name", Value::Str(&near));
        assert_eq!(a.db_name(), Some(near.as_str()), "up to 64 KiB is kept");
        a.set("db.system", Value::Str("z"));
        assert_eq!(a.db_system(), None, "the buffer is full");
    }

    #[test]
    fn span_values_win_over_resource_values() {
        let mut span = Attributes::default();
        span.set("db.name", Value::Str("orders"));
        let mut res = Attributes::default();
        res.set("db.name", Value::Str("other"));
        res.set("db.system", Value::Str("postgresql"));
        span.fill_from(&res);
        assert_eq!(span.db_name(), Some("orders"));
        assert_eq!(span.db_system(), Some("postgresql"));
    }
}
