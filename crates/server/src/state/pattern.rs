//! Wildcard matching for account search: `*` matches any run (also empty),
//! `?` exactly one character. Callers lowercase both sides first, which makes
//! matching case-insensitive.
//!
//! The classic two-pointer matcher with single-star backtracking: O(n·m) worst
//! case, no recursion (so no stack blow-up on hostile patterns), no allocation.

/// Whether `text` matches `pattern` in full.
pub fn wildcard_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Position of the last `*` seen, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star swallow one more character and retry.
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The literal characters before the first wildcard: every match starts with
/// them, so a sorted index can be range-scanned instead of fully scanned.
pub fn literal_prefix(pattern: &[char]) -> String {
    pattern
        .iter()
        .take_while(|&&c| c != '*' && c != '?')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        let p: Vec<char> = p.chars().collect();
        let t: Vec<char> = t.chars().collect();
        wildcard_match(&p, &t)
    }

    #[test]
    fn literals_and_question_marks() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("a", ""));
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abd"));
        assert!(!m("abc", "abcd"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("???", "xyz"));
        assert!(!m("???", "xy"));
    }

    #[test]
    fn stars() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("**", ""));
        assert!(m("a*", "a"));
        assert!(m("a*", "alice"));
        assert!(!m("a*", "bob"));
        assert!(m("*e", "alice"));
        assert!(!m("*e", "alicex"));
        assert!(m("*li*", "alice"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        // Needs backtracking: the first `b` is not the right one.
        assert!(m("*ab", "aab"));
        assert!(m("a*bc", "abcbc"));
        assert!(m("*?", "x"));
        assert!(!m("*?", ""));
        assert!(m("?*?", "ab"));
        assert!(!m("?*?", "a"));
    }

    #[test]
    fn hostile_pattern_is_fast() {
        let p: Vec<char> = "*a*a*a*a*a*a*a*a*a*a*b".chars().collect();
        let t: Vec<char> = std::iter::repeat_n('a', 5000).collect();
        assert!(!wildcard_match(&p, &t));
    }

    #[test]
    fn prefix() {
        let p: Vec<char> = "al?ce*".chars().collect();
        assert_eq!(literal_prefix(&p), "al");
        assert_eq!(literal_prefix(&['*']), "");
        assert_eq!(literal_prefix(&['b', 'o', 'b']), "bob");
    }
}
