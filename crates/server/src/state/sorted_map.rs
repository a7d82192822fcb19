//! Loads a `BTreeMap` from a snapshot in bulk.
//!
//! serde writes a `BTreeMap` in key order but reads it back one `insert` at
//! a time, each walking down from the root. std's `FromIterator` instead
//! sees the sorted run and builds the tree bottom-up in linear time. For the
//! maps that grow with every message (the messages themselves, which
//! conversation each lives in, the remembered request ids) that is most of
//! a cold restart's decoding.
//!
//! Use as `#[serde(deserialize_with = "sorted_map::deserialize")]`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// At most this many entries are reserved up front, whatever the input
/// claims.
const MAX_PREALLOCATED: usize = 1 << 20;

pub fn deserialize<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    struct Entries<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for Entries<K, V>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries =
                Vec::with_capacity(map.size_hint().unwrap_or(0).min(MAX_PREALLOCATED));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            // Sorts (linear when already sorted, as written) and bulk-builds;
            // a repeated key keeps its last value, as `insert` would.
            Ok(entries.into_iter().collect())
        }
    }

    deserializer.deserialize_map(Entries(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "deserialize")]
        map: BTreeMap<u64, String>,
    }

    #[test]
    fn round_trips_like_the_default() {
        let h = Holder {
            map: (0..5000u64)
                .rev()
                .map(|i| (i * 7, format!("v{i}")))
                .collect(),
        };
        let bytes = postcard::to_stdvec(&h).unwrap();
        let back: Holder = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, h);
        let default: BTreeMap<u64, String> =
            postcard::from_bytes(&postcard::to_stdvec(&h.map).unwrap()).unwrap();
        assert_eq!(back.map, default);
    }

    #[test]
    fn unsorted_input_still_gives_a_correct_map() {
        // Written by hand out of order, with a repeated key.
        let pairs: Vec<(u64, String)> = vec![(3, "c".into()), (1, "a".into()), (3, "d".into())];
        let bytes = postcard::to_stdvec(&pairs).unwrap();
        let back: Holder = postcard::from_bytes(&bytes).unwrap();
        let want: BTreeMap<u64, String> = [(1, "a".to_string()), (3, "d".to_string())].into();
        assert_eq!(back.map, want);
    }
}
