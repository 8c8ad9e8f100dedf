//! [`Symbols`]: a shard's names as small integers.
//!
//! Trace assembly holds every span of a trace until the trace goes quiet; at
//! a million spans a second that is millions of records. Keeping each name
//! as a 4-byte index instead of an `Arc<str>` (16 bytes, and an atomic count
//! touched on every clone and drop) makes those records less than half the
//! size and their copies free. The table is bounded: past its cap, new names
//! read as [`Symbols::OVERFLOW`], the name the graph already counts
//! everything past its caps under.

use std::collections::HashMap;
use std::sync::Arc;

/// An index into a shard's [`Symbols`].
pub type Sym = u32;

/// Slots of the pointer cache (a power of two).
const CACHE: usize = 64;

pub struct Symbols {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, Sym, ahash::RandomState>,
    /// Recently interned `Arc`s by address. Names reach the assembler as
    /// `Arc`s the shard already interned, so the same few pointers come back
    /// on nearly every span; a hit skips hashing the text. A slot is trusted
    /// only if the table's own `Arc` for its symbol is the same pointer, and
    /// the table keeps that `Arc` alive, so a reused address cannot lie.
    cache: [(usize, Sym); CACHE],
    cap: usize,
}

impl Symbols {
    /// The overflow name's symbol (always the first).
    pub const OVERFLOW: Sym = 0;
    /// "No name", for optional fields (never a valid index).
    pub const NONE: Sym = Sym::MAX;

    /// A table of at most `cap` names, `overflow` first.
    pub fn new(cap: usize, overflow: Arc<str>) -> Symbols {
        let mut index = HashMap::default();
        index.insert(overflow.clone(), Symbols::OVERFLOW);
        Symbols {
            names: vec![overflow],
            index,
            cache: [(0, Symbols::OVERFLOW); CACHE],
            cap: cap.clamp(1, Sym::MAX as usize - 1),
        }
    }

    /// The symbol for `name`, added if the table has room.
    pub fn sym(&mut self, name: &Arc<str>) -> Sym {
        let address = Arc::as_ptr(name) as *const u8 as usize;
        let slot = (address >> 4) % CACHE;
        let (cached, sym) = self.cache[slot];
        if cached == address && Arc::ptr_eq(&self.names[sym as usize], name) {
            return sym;
        }
        let sym = match self.index.get(&**name) {
            Some(&sym) => sym,
            None if self.names.len() >= self.cap => return Symbols::OVERFLOW,
            None => self.add(name.clone()),
        };
        if Arc::ptr_eq(&self.names[sym as usize], name) {
            self.cache[slot] = (address, sym);
        }
        sym
    }

    fn add(&mut self, name: Arc<str>) -> Sym {
        let sym = self.names.len() as Sym;
        self.names.push(name.clone());
        self.index.insert(name, sym);
        sym
    }

    /// The name of `sym` (the overflow name for [`Symbols::NONE`]).
    pub fn name(&self, sym: Sym) -> &Arc<str> {
        self.names
            .get(sym as usize)
            .unwrap_or(&self.names[Symbols::OVERFLOW as usize])
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_symbol_whatever_the_pointer() {
        let mut s = Symbols::new(10, "__overflow__".into());
        let a1: Arc<str> = "checkout".into();
        let a2: Arc<str> = "checkout".into();
        let b: Arc<str> = "cart".into();
        let (x, y, z) = (s.sym(&a1), s.sym(&a2), s.sym(&b));
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_eq!(&**s.name(x), "checkout");
        assert_eq!(&**s.name(z), "cart");
        // Cached by pointer: asking again gives the same answer.
        assert_eq!(s.sym(&b), z);
        assert_eq!(&**s.name(Symbols::NONE), "__overflow__");
    }

    #[test]
    fn past_the_cap_names_read_as_overflow() {
        let mut s = Symbols::new(3, "__overflow__".into());
        let names: Vec<Arc<str>> = (0..5).map(|i| format!("n{i}").into()).collect();
        let syms: Vec<Sym> = names.iter().map(|n| s.sym(n)).collect();
        assert_eq!(syms, vec![1, 2, 0, 0, 0]);
        assert_eq!(s.len(), 3);
        // A freed pointer reused by another name is not trusted.
        for i in 0..100 {
            let t: Arc<str> = format!("t{i}").into();
            assert_eq!(s.sym(&t), Symbols::OVERFLOW);
        }
        assert_eq!(s.sym(&names[1]), 2);
    }
}
