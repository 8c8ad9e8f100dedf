//! [`Recent`]: what a shard last derived from a name, found by the name's address.
//!
//! Every span asks the shard the same questions about the same few names:
//! which admitted node is this service, which operation is this name of
//! that service, which admitted edge joins these two nodes. Each answer is
//! a hash set lookup that hashes and compares the text, about a tenth of
//! aggregation per span. The names arrive as `Arc`s that are shared —
//! one per resource, one per operation name per request, one per admitted
//! node — so the address of the `Arc` already says which name it is.
//!
//! A slot holds clones of its key's `Arc`s, so no key can be freed and its
//! address reused by another name while the slot remembers it: a hit
//! compares addresses and is never wrong. A miss costs one comparison more
//! than no cache at all.

use std::sync::Arc;

use super::partial::EdgeKey;

/// Slots per cache (a power of two): a few services, operations and edges
/// per shard are hot at any moment, and collisions only cost a lookup.
const SLOTS: usize = 64;

/// A key compared by the addresses of its `Arc`s.
pub trait ByAddress: Clone {
    fn address(&self) -> usize;
    fn same(&self, other: &Self) -> bool;
}

fn address_of(name: &Arc<str>) -> usize {
    Arc::as_ptr(name) as *const u8 as usize
}

impl ByAddress for Arc<str> {
    fn address(&self) -> usize {
        address_of(self)
    }

    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(self, other)
    }
}

/// The address of the pair `(a, b)`, for probing without building the pair.
pub fn pair_address(a: &Arc<str>, b: &Arc<str>) -> usize {
    address_of(a) ^ address_of(b).rotate_left(17)
}

impl ByAddress for (Arc<str>, Arc<str>) {
    fn address(&self) -> usize {
        pair_address(&self.0, &self.1)
    }

    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) && Arc::ptr_eq(&self.1, &other.1)
    }
}

impl ByAddress for EdgeKey {
    fn address(&self) -> usize {
        address_of(&self.source) ^ address_of(&self.target).rotate_left(17) ^ self.kind as usize
    }

    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.source, &other.source)
            && Arc::ptr_eq(&self.target, &other.target)
            && self.kind == other.kind
    }
}

/// A direct-mapped cache from keys (by address) to values.
pub struct Recent<K, V> {
    slots: Vec<Option<(K, V)>>,
}

impl<K: ByAddress, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

impl<K: ByAddress, V> Recent<K, V> {
    fn slot(address: usize) -> usize {
        // Allocations are at least 16-byte aligned: the low bits say nothing.
        let a = address >> 4;
        (a ^ a >> 7) % SLOTS
    }

    /// The value remembered for `key`, if its slot still holds it.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.find(key.address(), |k| k.same(key))
    }

    /// The value remembered for the key at `address` that `is` recognises:
    /// a probe that borrows its parts instead of building a key (and
    /// touching their reference counts) on every span.
    #[inline]
    pub fn find(&self, address: usize, is: impl Fn(&K) -> bool) -> Option<&V> {
        match &self.slots[Self::slot(address)] {
            Some((k, v)) if is(k) => Some(v),
            _ => None,
        }
    }

    /// Remembers `value` for `key`, replacing whatever shared its slot.
    pub fn put(&mut self, key: K, value: V) {
        let slot = Self::slot(key.address());
        self.slots[slot] = Some((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_text_at_another_address_is_a_different_key() {
        let mut recent: Recent<Arc<str>, u32> = Recent::default();
        let a: Arc<str> = "checkout".into();
        let b: Arc<str> = "checkout".into();
        recent.put(a.clone(), 1);
        assert_eq!(recent.get(&a), Some(&1));
        assert_eq!(recent.get(&a.clone()), Some(&1));
        assert_eq!(recent.get(&b), None);
    }

    #[test]
    fn a_key_stays_alive_while_remembered() {
        let mut recent: Recent<(Arc<str>, Arc<str>), u32> = Recent::default();
        let key: (Arc<str>, Arc<str>) = ("svc".into(), "GET /".into());
        recent.put(key.clone(), 7);
        assert_eq!(Arc::strong_count(&key.0), 2);
        let swapped = (key.1.clone(), key.0.clone());
        assert_eq!(recent.get(&swapped), None);
        assert_eq!(recent.get(&key), Some(&7));
        let borrowed = recent.find(pair_address(&key.0, &key.1), |(a, b)| {
            Arc::ptr_eq(a, &key.0) && Arc::ptr_eq(b, &key.1)
        });
        assert_eq!(borrowed, Some(&7));
    }
}
