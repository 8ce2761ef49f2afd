//! The faults `SHOPNOW_FAULTS` injects into a write (`name=probability,...`), honoured by debug
//! builds and by release builds with the `fault-injection` feature.

use std::time::Duration;

/// The write skips its cache publish, leaving only its outbox row.
pub const SKIP_PUBLISH: &str = "skip-publish";
/// The process aborts right after the commit, before the publish.
pub const CRASH_AFTER_COMMIT: &str = "crash-after-commit";
/// The write stalls `PUBLISH_DELAY` between its commit and its publish.
pub const DELAY_PUBLISH: &str = "delay-publish";

/// Every fault name `SHOPNOW_FAULTS` accepts.
pub const ALL: [&str; 3] = [SKIP_PUBLISH, CRASH_AFTER_COMMIT, DELAY_PUBLISH];

/// How long `delay-publish` stalls a writer between its commit and its publish: long enough for
/// another write of the product to be acknowledged and for Redis to lose the key meanwhile.
pub const PUBLISH_DELAY: Duration = Duration::from_millis(300);

/// `SHOPNOW_FAULTS`'s value for these faults and their probabilities.
pub fn spec(faults: &[(&str, f64)]) -> String {
    faults
        .iter()
        .map(|(name, chance)| format!("{name}={chance}"))
        .collect::<Vec<_>>()
        .join(",")
}
