//! The `Date` header of responses, formatted once per second per thread.
//!
//! Formatting an HTTP date takes a calendar computation; responses within
//! the same second share the text. Each worker thread keeps its own copy
//! (no lock, no shared cache line), refreshed when the wall clock's second
//! changes.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(super) const DATE_LEN: usize = 29;

/// The formatted date of one second.
struct CachedDate {
    /// Seconds since the Unix epoch that `text` shows.
    second: u64,
    text: [u8; DATE_LEN],
}

thread_local! {
    static CACHED: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: u64::MAX, text: [b' '; DATE_LEN] })
    };
}

/// Appends the current date (IMF-fixdate, as `Date` wants it) to `dst`.
pub(super) fn put_date(dst: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.second != second {
            let mut text = [b' '; DATE_LEN];
            let mut cursor = &mut text[..];
            // 29 bytes always fit: the year stays below 10000 here.
            let _ = write!(cursor, "{}", httpdate::HttpDate::from(now));
            cached.text = text;
            cached.second = second;
        }
        dst.extend_from_slice(&cached.text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let mut first = Vec::new();
        put_date(&mut first);
        assert_eq!(first.len(), DATE_LEN);
        let text = std::str::from_utf8(&first).unwrap();
        let parsed = httpdate::parse_http_date(text).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(skew.as_secs() <= 2, "{text}");
        assert!(text.ends_with(" GMT"), "{text}");
    }
}
