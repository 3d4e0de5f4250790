//! Reading the kernel command line (the Multiboot2 command-line tag).
//!
//! The command line is a list of words separated by ASCII whitespace; a
//! word `key=value` sets `key`; other words are skipped (some boot loaders
//! put the kernel's path first: `/boot/kernel test_skip_ap=1`). The kernel
//! reads only test hooks from it (docs/architecture/scheduling.md names
//! `test_skip_ap=<index>`); nothing an ordinary boot needs comes from here.

/// The value of the first word `key=value` in `cmdline`, if any (`Some("")`
/// for `key=`). A word `key` without `=` does not count.
pub fn value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Most digits a CPU index may have on the command line.
const MAX_INDEX_DIGITS: usize = 4;

/// A CPU index written in decimal: 1 to [`MAX_INDEX_DIGITS`] ASCII digits,
/// nothing else (no sign, no spaces). The caller checks the range.
pub fn parse_index(v: &str) -> Option<usize> {
    if v.is_empty() || v.len() > MAX_INDEX_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_key_value_word() {
        let c = "/boot/kernel test_skip_ap=1 other=x test_skip_ap=3";
        assert_eq!(value(c, "test_skip_ap"), Some("1"));
        assert_eq!(value(c, "other"), Some("x"));
        assert_eq!(value(c, "missing"), None);
        assert_eq!(value("", "test_skip_ap"), None);
        assert_eq!(value("  test_skip_ap=2\t", "test_skip_ap"), Some("2"));
        assert_eq!(value("test_skip_ap=", "test_skip_ap"), Some(""));
    }

    #[test]
    fn a_key_must_match_a_whole_word() {
        assert_eq!(value("test_skip_ap", "test_skip_ap"), None);
        assert_eq!(value("xtest_skip_ap=1", "test_skip_ap"), None);
        assert_eq!(value("test_skip_ap_x=1", "test_skip_ap"), None);
        assert_eq!(value("/boot/kernel", "/boot/kernel"), None);
    }

    #[test]
    fn indices_are_plain_decimal() {
        assert_eq!(parse_index("0"), Some(0));
        assert_eq!(parse_index("1"), Some(1));
        assert_eq!(parse_index("63"), Some(63));
        assert_eq!(parse_index("9999"), Some(9999));
        assert_eq!(parse_index(""), None);
        assert_eq!(parse_index("10000"), None);
        assert_eq!(parse_index("+1"), None);
        assert_eq!(parse_index("-1"), None);
        assert_eq!(parse_index("1 "), None);
        assert_eq!(parse_index("0x1"), None);
        assert_eq!(parse_index("١"), None);
    }
}
