//! Message search, the part every store shares: how texts and queries are
//! folded, the trigrams an index keys them by, and the check every
//! candidate passes. A store finds candidates its own way (a disk store
//! from its trigram index, see `storage::search_index`; [`scan`] walks the
//! scope) and keeps those whose current text [`Query::matches`].
//!
//! # Matching
//!
//! A message matches when its *folded* text contains the folded query.
//! Folding is per character, without context, so that folding a text
//! folds each of its substrings the same way: Unicode's lowercase mapping
//! of each character, with final sigma as sigma (`ΟΔΟΣ` finds `οδος`) and
//! `ß` as `ss` (`STRASSE` finds `Straße`). That is Unicode case folding
//! for the scripts chat users write, without a table of our own; text is
//! not normalised, so a precomposed `é` does not find `e` + U+0301.
//!
//! # Trigrams
//!
//! A folded text of n characters has n trigrams: one starting at each
//! character, padded past the end with [`PAD`]. The padding makes every
//! one- or two-character string the prefix of a trigram, so short queries
//! are answered from the index too (by a range of trigrams) and texts
//! shorter than three characters are indexed.

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::state::command::{ChatError, ConversationId, MessageId};
use crate::state::store::{Message, Store};

/// Longest query, in bytes of UTF-8 (after trimming).
pub const MAX_QUERY_BYTES: usize = 256;

/// The trigram character after a text's end.
pub const PAD: u32 = 0;

/// Bits of one character in a [`Gram`] (Unicode scalars fit in 21).
const CHAR_BITS: u32 = 21;

/// Three folded characters, the first in the high bits, so that the
/// trigrams starting with one or two given characters are one range.
pub type Gram = u64;

/// A message a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub conversation: ConversationId,
    pub id: MessageId,
    pub message: Message,
}

/// Folds `text` for matching (see the module docs).
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        for l in c.to_lowercase() {
            match l {
                'ς' => out.push('σ'),
                'ß' => out.push_str("ss"),
                l => out.push(l),
            }
        }
    }
    out
}

fn gram(a: u32, b: u32, c: u32) -> Gram {
    ((a as u64) << (2 * CHAR_BITS)) | ((b as u64) << CHAR_BITS) | c as u64
}

/// Calls `f` with each trigram of a folded text, in text order, repeats
/// included (see the module docs).
pub fn each_gram(folded: &str, mut f: impl FnMut(Gram)) {
    let mut chars = folded.chars().map(|c| c as u32);
    let (Some(mut a), mut b, mut c) = (chars.next(), chars.next(), chars.next()) else {
        return;
    };
    loop {
        f(gram(a, b.unwrap_or(PAD), c.unwrap_or(PAD)));
        match b {
            Some(next) => (a, b, c) = (next, c, chars.next()),
            None => return,
        }
    }
}

/// What an index looks up for a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Every one of these trigrams (a query of three characters or more).
    All(Vec<Gram>),
    /// Any trigram in this inclusive range: those starting with the query's
    /// one or two characters.
    AnyIn(Gram, Gram),
}

/// A validated, folded search query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    folded: String,
}

/// Trigrams of a long query looked up; the rest only cost lookups, the
/// verification checks the whole query anyway.
const MAX_LOOKUP_GRAMS: usize = 24;

impl Query {
    /// The query for `text`, trimmed; empty or longer than
    /// [`MAX_QUERY_BYTES`] is INVALID_ARGUMENT.
    pub fn new(text: &str) -> Result<Query, ChatError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ChatError::invalid("the search query is empty"));
        }
        if text.len() > MAX_QUERY_BYTES {
            return Err(ChatError::invalid(format!(
                "the search query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                text.len()
            )));
        }
        Ok(Query { folded: fold(text) })
    }

    /// Whether a message with text `body` matches.
    pub fn matches(&self, body: &str) -> bool {
        // Most text is ASCII, whose fold is its ASCII lowercase: compare in
        // place rather than fold a copy of every candidate.
        if body.is_ascii() && self.folded.is_ascii() {
            let (body, query) = (body.as_bytes(), self.folded.as_bytes());
            return query.is_empty()
                || body
                    .windows(query.len())
                    .any(|w| w.eq_ignore_ascii_case(query));
        }
        fold(body).contains(&self.folded)
    }

    /// What an index looks up for this query.
    pub fn lookup(&self) -> Lookup {
        let chars: Vec<u32> = self.folded.chars().map(|c| c as u32).collect();
        let last = (1 << CHAR_BITS) - 1;
        match chars[..] {
            [a] => Lookup::AnyIn(gram(a, 0, 0), gram(a, last, last)),
            [a, b] => Lookup::AnyIn(gram(a, b, 0), gram(a, b, last)),
            _ => {
                // Internal trigrams only: the query may go on in the text.
                let grams: BTreeSet<Gram> =
                    chars.windows(3).map(|w| gram(w[0], w[1], w[2])).collect();
                // Spread over the query rather than its start.
                let step = grams.len().div_ceil(MAX_LOOKUP_GRAMS).max(1);
                Lookup::All(grams.into_iter().step_by(step).collect())
            }
        }
    }
}

/// Search without an index: walks each conversation of `scope` newest
/// first from `before` (0 = the newest), stopping at `limit` matches in
/// each. What the memory store does; the cost is the scope's history.
pub fn scan<S: Store + ?Sized>(
    store: &S,
    scope: &BTreeSet<ConversationId>,
    query: &Query,
    before: MessageId,
    limit: usize,
) -> Vec<Found> {
    let upper = match before {
        0 => Bound::Unbounded,
        before => Bound::Excluded(before),
    };
    let mut found = Vec::new();
    for &conversation in scope {
        let matches = store
            .messages(conversation, (Bound::Unbounded, upper), true)
            .filter(|(_, m)| query.matches(&m.body))
            .take(limit)
            .map(|(id, message)| Found {
                conversation,
                id,
                message,
            });
        found.extend(matches);
    }
    newest(found, limit)
}

/// The `limit` newest of `found`, newest first.
pub fn newest(mut found: Vec<Found>, limit: usize) -> Vec<Found> {
    found.sort_unstable_by_key(|f| std::cmp::Reverse(f.id));
    found.truncate(limit);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distinct trigrams of a folded text.
    fn text_grams(folded: &str) -> BTreeSet<Gram> {
        let mut grams = BTreeSet::new();
        each_gram(folded, |g| {
            grams.insert(g);
        });
        grams
    }

    #[test]
    fn folding_is_case_insensitive_beyond_ascii() {
        assert_eq!(fold("ÉCOLE"), "école");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("STRASSE"), "strasse");
        assert_eq!(fold("ΟΔΟΣ"), "οδοσ");
        assert_eq!(fold("οδος"), "οδοσ");
        // ASCII text is compared in place; the Kelvin sign folds to k.
        assert!(Query::new("OK").unwrap().matches("it is ok."));
        assert!(!Query::new("OK").unwrap().matches("o k"));
        assert!(Query::new("k").unwrap().matches("0 \u{212a}"));
        let q = Query::new("école").unwrap();
        assert!(q.matches("L'ÉCOLE est fermée"));
        assert!(!q.matches("ecole"));
        assert!(Query::new("straße").unwrap().matches("Die STRASSE"));
    }

    #[test]
    fn hostile_queries_are_refused_with_the_limit() {
        assert!(Query::new("").is_err());
        assert!(Query::new("  \t").is_err());
        let err = Query::new(&"x".repeat(MAX_QUERY_BYTES + 1)).unwrap_err();
        assert!(err.message.contains("256"), "{err:?}");
        assert!(Query::new(&"x".repeat(MAX_QUERY_BYTES)).is_ok());
    }

    #[test]
    fn every_query_gram_is_a_text_gram() {
        let text = fold("Hello, wörld! ok");
        let grams = text_grams(&text);
        for q in ["hello", "LLO, W", "ö", "ok", "k", "d! o"] {
            match Query::new(q).unwrap().lookup() {
                Lookup::All(all) => assert!(all.iter().all(|g| grams.contains(g)), "{q}"),
                Lookup::AnyIn(lo, hi) => assert!(grams.range(lo..=hi).next().is_some(), "{q}"),
            }
        }
        match Query::new("zz").unwrap().lookup() {
            Lookup::AnyIn(lo, hi) => assert!(grams.range(lo..=hi).next().is_none()),
            other => panic!("{other:?}"),
        }
        assert_eq!(text_grams("ab").len(), 2, "short texts are indexed");
        assert_eq!(text_grams("a").len(), 1);
        assert!(text_grams("").is_empty());
        let mut all = Vec::new();
        each_gram("abcabc", |g| all.push(g));
        assert_eq!(all.len(), 6, "repeats included");
        assert_eq!(all[0], all[3]);
    }
}
