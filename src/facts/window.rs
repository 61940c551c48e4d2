//! Two readings of one source, a window apart: what a "did it grow just now" fact is
//! made of (softnet_stat, the conntrack statistics, /proc/stat).
//!
//! The first reading is taken when gathering starts ([`start`]); the window runs while
//! the other facts are read, and [`Pending::finish`] waits out what is left and reads
//! again. Both readings are kept ([`Sampled`]), so a saved snapshot or plan replays the
//! decision without waiting. When the first reading already proves that nothing can
//! have grown enough to matter (every count asked about is below the smallest growth
//! that could fire, 0 since boot for `above: 0`), there is no second reading and no
//! wait: the window is then taken to end at the first reading, which bounds any
//! growth before it. A snapshot of an older tune holds a single since-boot reading
//! ([`Readings::SinceBoot`]); detection says a rate cannot be told from it.
//!
//! Helpers for the comparisons: [`u32_growth`] (kernel counters printed as 32-bit
//! values wrap at 2^32) and [`paired`] (only CPUs present in both readings compare).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Fact;

/// Two readings of a source, `window` seconds apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sampled<T> {
    /// The first reading (counts since boot).
    pub first: T,
    /// The reading `window` seconds later; absent when the first reading already
    /// showed that no count asked about could have grown enough to fire (not sampled,
    /// no wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second: Option<T>,
    /// Seconds between the readings (0 when not sampled).
    pub window: f64,
}

/// What a facts snapshot holds for a sampled source: two readings, or (a snapshot of
/// an older tune) a single since-boot reading, from which no rate can be told.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Readings<T> {
    Window(Sampled<T>),
    /// One since-boot reading (the list of rows an older tune wrote).
    SinceBoot(T),
}

/// Why a single since-boot reading decides nothing.
pub const SINCE_BOOT_ONLY: &str = "the snapshot holds one since-boot reading (taken by an older tune), not two readings a window apart: a rate cannot be told from it; take the snapshot again";

impl<T> Readings<T> {
    /// The two readings, or why there are none.
    pub fn sampled(&self) -> Result<&Sampled<T>, &'static str> {
        match self {
            Readings::Window(s) => Ok(s),
            Readings::SinceBoot(_) => Err(SINCE_BOOT_ONLY),
        }
    }
}

/// A JSON list is the old single reading, a JSON object the two readings (each read
/// with its own precise errors, unlike an untagged enum's "did not match any variant").
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Readings<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Readings<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("{first, second, window} or a list of rows")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::SeqAccessDeserializer::new(a))
                    .map(Readings::SinceBoot)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                Sampled::deserialize(serde::de::value::MapAccessDeserializer::new(a))
                    .map(Readings::Window)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// What the conditions on one sampled source ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// How long to wait between the readings (the longest any condition asks).
    pub window: Duration,
    /// Column → the smallest growth that could make a condition on it hold (0: any,
    /// so always sample). The second reading is skipped only when every column's
    /// since-boot total is below its figure.
    pub min_growth: BTreeMap<String, u64>,
}

impl Want {
    /// Adds a condition on `column` to what `want` asks (two conditions: the longer
    /// window, the smaller threshold).
    pub fn add(want: &mut Option<Want>, window: Duration, column: &str, min_growth: u64) {
        let w = want.get_or_insert_with(|| Want {
            window,
            min_growth: BTreeMap::new(),
        });
        w.window = w.window.max(window);
        let m = w.min_growth.entry(column.to_owned()).or_insert(min_growth);
        *m = (*m).min(min_growth);
    }

    /// Whether a first reading with these since-boot totals per column (`None`: no
    /// such column) could still let a condition fire.
    pub fn needs_second(&self, total: impl Fn(&str) -> Option<u64>) -> bool {
        self.min_growth.is_empty()
            || self
                .min_growth
                .iter()
                .any(|(column, min)| total(column).is_none_or(|t| t >= *min))
    }
}

/// A first reading, waiting for the second.
#[derive(Debug)]
pub struct Pending<T> {
    first: Fact<T>,
    sample: bool,
    window: Duration,
    started: Instant,
}

/// Takes note of the first reading (just read). `needs_second` says whether it could
/// still let a rule fire; when not, [`Pending::finish`] neither waits nor reads again.
pub fn start<T>(
    first: Fact<T>,
    window: Duration,
    needs_second: impl FnOnce(&T) -> bool,
) -> Pending<T> {
    let sample = match &first {
        Fact::Value(v) => needs_second(v),
        Fact::Unknown(_) => false,
    };
    Pending {
        first,
        sample,
        window,
        started: Instant::now(),
    }
}

impl<T> Pending<T> {
    /// Waits out what is left of the window and reads again (when needed).
    pub fn finish(self, read: impl FnOnce() -> Fact<T>) -> Fact<Readings<T>> {
        let first = match self.first {
            Fact::Value(v) => v,
            Fact::Unknown(why) => return Fact::Unknown(why),
        };
        if !self.sample {
            return Fact::Value(Readings::Window(Sampled {
                first,
                second: None,
                window: 0.0,
            }));
        }
        wait_out(self.started, self.window);
        let second = read();
        let window = self.started.elapsed().as_secs_f64();
        match second {
            Fact::Value(second) => Fact::Value(Readings::Window(Sampled {
                first,
                second: Some(second),
                window,
            })),
            Fact::Unknown(why) => Fact::Unknown(format!("second reading: {why}")),
        }
    }
}

/// The growth of a counter the kernel keeps and prints as 32 bits (`%08x` of an
/// `unsigned int`): a second reading below the first wrapped once at 2^32 (a window of
/// seconds cannot see two wraps). `None` when the values cannot be 32-bit readings
/// (a hand-written snapshot going down from above 2^32).
pub fn u32_growth(first: u64, second: u64) -> Option<u64> {
    const WRAP: u64 = 1 << 32;
    if second >= first {
        Some(second - first)
    } else if first < WRAP {
        Some(WRAP - first + second)
    } else {
        None
    }
}

/// The rows of CPUs present in both readings, in the second reading's order, and the
/// CPUs found in only one of them (brought on- or offline during the window).
pub fn paired<'a, R>(
    first: &'a [R],
    second: &'a [R],
    cpu: impl Fn(&R) -> u32,
) -> (Vec<(&'a R, &'a R)>, Vec<u32>) {
    let mut pairs = Vec::new();
    let mut alone = Vec::new();
    for b in second {
        match first.iter().find(|a| cpu(a) == cpu(b)) {
            Some(a) => pairs.push((a, b)),
            None => alone.push(cpu(b)),
        }
    }
    for a in first {
        if !second.iter().any(|b| cpu(b) == cpu(a)) {
            alone.push(cpu(a));
        }
    }
    alone.sort_unstable();
    (pairs, alone)
}

/// "cpu2, cpu5 changed online state during the window (left out)", or nothing.
pub fn left_out(cpus: &[u32]) -> Option<String> {
    (!cpus.is_empty()).then(|| {
        let names: Vec<String> = cpus.iter().map(|c| format!("cpu{c}")).collect();
        format!(
            "{} in only one of the readings (brought on- or offline during the window), left out",
            names.join(", ")
        )
    })
}

/// Sleeps what is left of `window` since `started` (nothing when the other facts took
/// longer): the second reading of every sampled fact comes a window after its first.
pub fn wait_out(started: Instant, window: Duration) {
    if let Some(left) = window.checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u32_counters_wrap_once() {
        assert_eq!(u32_growth(5, 17), Some(12));
        assert_eq!(u32_growth(0xffff_fff0, 0x10), Some(0x20));
        assert_eq!(u32_growth(1 << 40, 3), None);
    }

    #[test]
    fn only_cpus_in_both_readings_pair() {
        let first = [(0u32, 1u64), (1, 2), (2, 3)];
        let second = [(0u32, 5u64), (2, 4), (3, 9)];
        let (pairs, alone) = paired(&first, &second, |r| r.0);
        let got: Vec<(u32, u64, u64)> = pairs.iter().map(|(a, b)| (a.0, a.1, b.1)).collect();
        assert_eq!(got, vec![(0, 1, 5), (2, 3, 4)]);
        assert_eq!(alone, vec![1, 3]);
        assert!(
            left_out(&alone)
                .unwrap()
                .starts_with("cpu1, cpu3 in only one")
        );
        assert_eq!(left_out(&[]), None);
    }

    #[test]
    fn old_single_readings_still_load() {
        let old: Readings<Vec<u32>> = serde_json::from_str("[1, 2]").unwrap();
        assert_eq!(old, Readings::SinceBoot(vec![1, 2]));
        assert_eq!(old.sampled().unwrap_err(), SINCE_BOOT_ONLY);
        let new: Readings<Vec<u32>> =
            serde_json::from_str(r#"{"first": [1], "second": [3], "window": 1.0}"#).unwrap();
        assert_eq!(new.sampled().unwrap().second, Some(vec![3]));
        let bad = serde_json::from_str::<Readings<Vec<u32>>>(r#"{"first": [1], "extra": 1}"#);
        assert!(bad.unwrap_err().to_string().contains("extra"));
    }

    #[test]
    fn a_second_reading_is_wanted_while_some_column_could_fire() {
        let mut want = None;
        Want::add(&mut want, Duration::from_secs(1), "dropped", 1);
        Want::add(&mut want, Duration::from_secs(3), "time_squeeze", 5);
        Want::add(&mut want, Duration::from_secs(2), "time_squeeze", 2);
        let want = want.expect("want");
        assert_eq!(want.window, Duration::from_secs(3), "the longest window");
        assert_eq!(want.min_growth["time_squeeze"], 2, "the smallest threshold");
        assert!(!want.needs_second(|c| Some(if c == "dropped" { 0 } else { 1 })));
        assert!(want.needs_second(|c| Some(if c == "dropped" { 0 } else { 2 })));
        assert!(
            want.needs_second(|_| None),
            "a missing column is read again"
        );
        let always = Want {
            window: Duration::ZERO,
            min_growth: BTreeMap::new(),
        };
        assert!(always.needs_second(|_| Some(0)));
    }

    #[test]
    fn a_reading_that_proves_nothing_does_not_wait() {
        let started = Instant::now();
        let got = start(Fact::Value(0u64), Duration::from_secs(30), |v| *v > 0)
            .finish(|| panic!("no second reading"));
        assert!(started.elapsed() < Duration::from_secs(5));
        let Fact::Value(Readings::Window(s)) = got else {
            panic!("{got:?}")
        };
        assert_eq!((s.first, s.second, s.window), (0, None, 0.0));
        let got = start(Fact::Value(1u64), Duration::from_millis(50), |v| *v > 0)
            .finish(|| Fact::Value(4));
        let Fact::Value(Readings::Window(s)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(s.second, Some(4));
        assert!(s.window >= 0.05, "{}", s.window);
    }
}
