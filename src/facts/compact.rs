//! Small types for the facts a host holds by the thousand (a namespace may have 30,000
//! links): a link's name inline, its kind and state as two-byte words, its MAC as six
//! bytes, each written and read as a plain JSON string, and its optional numbers in
//! five bytes, written as the `Option` they hold. A facts snapshot looks as it would
//! with `String`s and `Option`s.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;

/// A word from a small vocabulary (a link's kind or operational state) in two bytes.
/// The common words are a const table; any other is leaked once into a process-wide
/// table that holds each distinct word once. The kernel has a few dozen link kinds and
/// eight states, so the leak is bounded; a snapshot naming more distinct words than
/// the table holds is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Word(u16);

/// The known words; index 0 is the empty word (`Word::default()`).
const WORDS: [&str; 31] = [
    "",
    // Link kinds: IFLA_INFO_KIND, then the ones derived from the link-layer type.
    "veth",
    "bridge",
    "bond",
    "vlan",
    "vxlan",
    "macvlan",
    "macvtap",
    "ipvlan",
    "dummy",
    "tun",
    "wireguard",
    "ipip",
    "gre",
    "gretap",
    "ip6tnl",
    "sit",
    "geneve",
    "vrf",
    "team",
    "nlmon",
    "loopback",
    "ethernet",
    // Operational states, in IF_OPER_* order from OPER_STATES on.
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
    "none",
];

static OTHER_WORDS: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

/// Where IF_OPER_UNKNOWN (0) sits in `WORDS`; IF_OPER_UP (6) is six further on.
const OPER_STATES: usize = 23;

impl Word {
    /// A word of the const table, by its text (for the kernel's common values).
    pub fn known(text: &[u8]) -> Option<Word> {
        let at = WORDS.iter().position(|w| w.as_bytes() == text)?;
        Some(Word(at as u16))
    }

    /// An operational state by its IF_OPER_* code (0 to 6), with no search: a dump
    /// of 30k links asks for 30k of them.
    pub fn oper_state(code: u8) -> Option<Word> {
        (code <= 6).then(|| Word((OPER_STATES + usize::from(code)) as u16))
    }

    /// The word for `text`, added to the process-wide table if it is new.
    pub fn new(text: &str) -> Result<Word, String> {
        if let Some(w) = Word::known(text.as_bytes()) {
            return Ok(w);
        }
        // A poisoned lock still holds a consistent table: entries are only pushed.
        let mut others = OTHER_WORDS.write().unwrap_or_else(|e| e.into_inner());
        let at = match others.iter().position(|w| *w == text) {
            Some(at) => at,
            None => {
                if WORDS.len() + others.len() > usize::from(u16::MAX) {
                    return Err(format!(
                        "{text:?}: more than {} distinct link kinds and states",
                        u16::MAX
                    ));
                }
                others.push(Box::leak(text.into()));
                others.len() - 1
            }
        };
        Ok(Word((WORDS.len() + at) as u16))
    }

    pub fn as_str(self) -> &'static str {
        let at = usize::from(self.0);
        match WORDS.get(at) {
            Some(w) => w,
            None => {
                let others = OTHER_WORDS.read().unwrap_or_else(|e| e.into_inner());
                others.get(at - WORDS.len()).copied().unwrap_or("")
            }
        }
    }
}

impl std::ops::Deref for Word {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for Word {
    type Err = String;

    fn from_str(text: &str) -> Result<Word, String> {
        Word::new(text)
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest name kept inline: the kernel's names have at most 15 bytes (IFNAMSIZ
/// less its NUL), so only a lossily decoded name or a hand-edited snapshot's is longer.
const INLINE_NAME: usize = 15;

/// A link's name in 16 bytes with no allocation: up to 15 bytes inline (NUL-padded),
/// a longer one, or one holding a NUL, on the heap.
#[derive(Clone)]
pub struct LinkName(NameRepr);

#[derive(Clone)]
enum NameRepr {
    /// The UTF-8 bytes, then zeros.
    Inline([u8; INLINE_NAME]),
    // Boxed twice: a thin pointer keeps the enum at 16 bytes.
    Heap(Box<Box<str>>),
}

impl LinkName {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            NameRepr::Inline(bytes) => {
                let len = bytes.iter().position(|b| *b == 0).unwrap_or(INLINE_NAME);
                // Built from a &str with no NUL, so always UTF-8; "" is unreachable.
                std::str::from_utf8(&bytes[..len]).unwrap_or_default()
            }
            NameRepr::Heap(s) => s,
        }
    }
}

impl From<&str> for LinkName {
    fn from(text: &str) -> LinkName {
        let n = text.len();
        if n <= INLINE_NAME && !text.as_bytes().contains(&0) {
            let mut bytes = [0u8; INLINE_NAME];
            bytes[..n].copy_from_slice(text.as_bytes());
            LinkName(NameRepr::Inline(bytes))
        } else {
            LinkName(NameRepr::Heap(Box::new(text.into())))
        }
    }
}

impl From<Cow<'_, str>> for LinkName {
    fn from(text: Cow<'_, str>) -> LinkName {
        LinkName::from(&*text)
    }
}

impl Default for LinkName {
    fn default() -> LinkName {
        LinkName::from("")
    }
}

impl std::ops::Deref for LinkName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for LinkName {
    fn eq(&self, other: &LinkName) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for LinkName {}

impl FromStr for LinkName {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<LinkName, Self::Err> {
        Ok(LinkName::from(text))
    }
}

impl fmt::Display for LinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `==` against text, as `String` and `Cow<str>` compare.
macro_rules! eq_text {
    ($($t:ty),*) => {$(
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<$t> for String {
            fn eq(&self, other: &$t) -> bool {
                self == other.as_str()
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }
    )*};
}
eq_text!(Word, LinkName);

/// A 6-byte link-layer address, written (and read) as six lowercase hex pairs with
/// colons, `02:00:00:aa:bb:01`. Kept as bytes: 30k links need no 30k strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = String;

    fn from_str(text: &str) -> Result<Mac, String> {
        let bad = || format!("{text:?} is not a MAC address (six hex pairs with colons)");
        let mut out = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut out {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            None => Ok(Mac(out)),
            Some(_) => Err(bad()),
        }
    }
}

/// Serialized as its `Display` text, read back with `FromStr`, a string in the schema.
macro_rules! as_json_string {
    ($($t:ident),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let text = Cow::<str>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $t {
            fn schema_name() -> Cow<'static, str> {
                stringify!($t).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(generator)
            }
        }
    )*};
}
as_json_string!(Word, LinkName, Mac);

/// An `Option` of a small `Copy` value with no padding: an `Option<u32>` takes 8
/// bytes, this 5, and a link holds five of them. Written and read as the `Option`.
#[derive(Clone, Copy)]
#[repr(C, packed)]
pub struct PackedOption<T: Copy> {
    some: bool,
    value: T,
}

impl<T: Copy + Default> PackedOption<T> {
    pub const fn get(self) -> Option<T> {
        if self.some { Some(self.value) } else { None }
    }

    pub const fn is_none(&self) -> bool {
        !self.some
    }
}

impl<T: Copy + Default> From<Option<T>> for PackedOption<T> {
    fn from(value: Option<T>) -> PackedOption<T> {
        PackedOption {
            some: value.is_some(),
            value: value.unwrap_or_default(),
        }
    }
}

impl<T: Copy + Default> Default for PackedOption<T> {
    fn default() -> PackedOption<T> {
        PackedOption::from(None)
    }
}

impl<T: Copy + Default + PartialEq> PartialEq for PackedOption<T> {
    fn eq(&self, other: &PackedOption<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Copy + Default + Eq> Eq for PackedOption<T> {}

impl<T: Copy + Default + fmt::Debug> fmt::Debug for PackedOption<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl<T: Copy + Default + serde::Serialize> serde::Serialize for PackedOption<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de, T: Copy + Default + serde::Deserialize<'de>> serde::Deserialize<'de> for PackedOption<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PackedOption<T>, D::Error> {
        Option::<T>::deserialize(d).map(PackedOption::from)
    }
}

impl<T: Copy + Default + schemars::JsonSchema> schemars::JsonSchema for PackedOption<T> {
    fn schema_name() -> Cow<'static, str> {
        Option::<T>::schema_name()
    }

    fn inline_schema() -> bool {
        Option::<T>::inline_schema()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Option::<T>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_is_two_bytes_and_each_distinct_word_is_stored_once() {
        assert_eq!(std::mem::size_of::<Word>(), 2);
        assert_eq!(Word::default(), "");
        let veth = Word::new("veth").expect("known");
        assert_eq!(
            (veth, veth.as_str()),
            (Word::known(b"veth").unwrap(), "veth")
        );
        let a = Word::new("compact-test-kind").expect("added");
        let b = Word::new("compact-test-kind").expect("found");
        assert_eq!(a, b);
        assert_eq!(&*a, "compact-test-kind");
        assert_ne!(a, Word::new("compact-test-kind-2").expect("added"));
        let json = serde_json::to_string(&a).expect("serializes");
        assert_eq!(json, r#""compact-test-kind""#);
        assert_eq!(serde_json::from_str::<Word>(&json).expect("parses"), a);
        assert_eq!(
            format!("{a:?} {a}"),
            r#""compact-test-kind" compact-test-kind"#
        );
    }

    #[test]
    fn a_link_name_is_inline_up_to_15_bytes_and_compares_as_text() {
        assert_eq!(std::mem::size_of::<LinkName>(), 16);
        for text in [
            "",
            "eth0",
            "fourteen-bytes",
            "a-fifteen-byte!",
            "sixteen-bytes-!!",
            "a name longer than 22 bytes",
            "nul\0inside",
        ] {
            let name = LinkName::from(text);
            assert_eq!(name.as_str(), text);
            assert_eq!(name, text);
            assert_eq!(
                matches!(name.0, NameRepr::Inline(..)),
                text.len() <= INLINE_NAME && !text.contains('\0'),
                "{text}"
            );
            let json = serde_json::to_string(&name).expect("serializes");
            assert_eq!(
                serde_json::from_str::<LinkName>(&json).expect("parses"),
                name
            );
        }
        assert_eq!(
            LinkName::from("eth1"),
            LinkName::from(String::from("eth1").as_str())
        );
        assert_ne!(LinkName::from("eth0"), LinkName::from("eth1"));
        let lossy = String::from_utf8_lossy(b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8");
        assert_eq!(LinkName::from(lossy.clone()).as_str(), lossy);
    }

    #[test]
    fn a_packed_option_is_five_bytes_and_reads_and_writes_as_an_option() {
        assert_eq!(std::mem::size_of::<PackedOption<u32>>(), 5);
        assert_eq!(std::mem::align_of::<PackedOption<u32>>(), 1);
        for value in [None, Some(0), Some(68), Some(u32::MAX)] {
            let packed = PackedOption::from(value);
            assert_eq!((packed.get(), packed.is_none()), (value, value.is_none()));
            assert_eq!(format!("{packed:?}"), format!("{value:?}"));
            let json = serde_json::to_string(&packed).expect("serializes");
            assert_eq!(json, serde_json::to_string(&value).expect("serializes"));
            assert_eq!(
                serde_json::from_str::<PackedOption<u32>>(&json).expect("parses"),
                packed
            );
        }
        assert_ne!(PackedOption::from(Some(0u32)), PackedOption::default());
        assert_eq!(PackedOption::from(Some(-1i32)).get(), Some(-1));
        assert!(serde_json::from_str::<PackedOption<u32>>("-1").is_err());
        assert_eq!(
            serde_json::to_value(schemars::schema_for!(PackedOption<u32>)).expect("schema"),
            serde_json::to_value(schemars::schema_for!(Option<u32>)).expect("schema")
        );
    }
}
