//! The stamp a `versioned` copy carries, and its ETag: which history of the database a version
//! belongs to, and the version in it.
//!
//! Postgres owns the version, and after a failover that lost commits the promoted database hands
//! out version numbers again that copies of lost writes already carry. So a copy is ordered by
//! (history, version): the history is how many new timelines the database has started since
//! shopnow's migrations first ran (0 until the first failover or point-in-time recovery), read
//! from the server in the statement that read or wrote the row. Every copy written after a
//! promotion orders above every copy written before it.
//!
//! A stamp is one integer, `history << 40 | version`, so that the Lua scripts compare stamps as
//! they compared versions, and a deployment that never failed over stores exactly the versions
//! it stored before histories existed (a rolling update from such a build mixes nothing).

/// Bits of the version in a stamp: 2^40 versions of one product, 2^12 histories, and the
/// whole stamp below 2^53, where Lua's numbers stop being exact.
pub const VERSION_BITS: u32 = 40;

/// The largest history a stamp holds.
pub const MAX_HISTORY: i64 = (1 << (53 - VERSION_BITS)) - 1;

/// The stamp of `version` in `history`.
pub fn stamp(history: i64, version: i64) -> i64 {
    (history << VERSION_BITS) | version
}

/// The history and the version of a stamp.
pub fn split(stamp: i64) -> (i64, i64) {
    (stamp >> VERSION_BITS, stamp & ((1 << VERSION_BITS) - 1))
}

/// The ETag of a version: `"<version>"` in the first history (as before histories existed),
/// `"<history>.<version>"` after, so that two contents never share one ETag.
pub fn etag(history: i64, version: i64) -> String {
    etag_with_lapsed(history, version, 0)
}

/// The ETag of a version read after `lapsed` of its holds expired: a hold's expiry changes
/// `reserved` with no new version, so the count of lapsed holds follows the version
/// (`"<version>-<lapsed>"`). Holds lapse in expiry order, so (version, lapsed) names one
/// content.
pub fn etag_with_lapsed(history: i64, version: i64, lapsed: usize) -> String {
    match (history, lapsed) {
        (0, 0) => format!("\"{version}\""),
        (0, _) => format!("\"{version}-{lapsed}\""),
        (_, 0) => format!("\"{history}.{version}\""),
        (_, _) => format!("\"{history}.{version}-{lapsed}\""),
    }
}

/// The history and version an ETag names, if it is one (the count of lapsed holds aside).
pub fn parse_etag(etag: &str) -> Option<(i64, i64)> {
    let inner = etag.trim().trim_start_matches("W/").trim_matches('"');
    let inner = match inner.split_once('-') {
        Some((stamp, lapsed)) => {
            lapsed.parse::<u64>().ok()?;
            stamp
        }
        None => inner,
    };
    match inner.split_once('.') {
        None => Some((0, inner.parse().ok()?)),
        Some((history, version)) => Some((history.parse().ok()?, version.parse().ok()?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_order_by_history_first() {
        assert_eq!(stamp(0, 7), 7, "the first history stores plain versions");
        assert!(stamp(1, 2) > stamp(0, 999_999));
        assert_eq!(split(stamp(3, 12)), (3, 12));
        assert!(stamp(MAX_HISTORY, (1 << VERSION_BITS) - 1) < (1_i64 << 53));
    }

    #[test]
    fn etags_name_history_and_version() {
        assert_eq!(etag(0, 4), "\"4\"");
        assert_eq!(etag(2, 4), "\"2.4\"");
        assert_eq!(parse_etag("\"2.4\""), Some((2, 4)));
        assert_eq!(parse_etag("W/\"4\""), Some((0, 4)));
        assert_eq!(parse_etag("\"x\""), None);
        assert_eq!(etag_with_lapsed(0, 4, 2), "\"4-2\"");
        assert_eq!(etag_with_lapsed(3, 4, 1), "\"3.4-1\"");
        assert_eq!(parse_etag("\"3.4-1\""), Some((3, 4)));
        assert_eq!(parse_etag("\"4-x\""), None);
    }
}
