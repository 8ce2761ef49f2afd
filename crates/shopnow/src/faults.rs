//! Faults injected into the write path, for tests and the stale-read checker.
//!
//! `SHOPNOW_FAULTS=skip-publish=0.05,crash-after-commit=0.001,delay-publish=0.1` gives each
//! write that chance of skipping its cache publish, of aborting the process right after its
//! commit (the two ways a publish is lost in production), or of stalling `PUBLISH_DELAY` between
//! its commit and its publish (a scheduler pause, a VM steal, a GC-like stop). A release build
//! honours the variable only when compiled with the `fault-injection` feature, so configuration
//! alone cannot break a production binary.

use std::fmt;

/// Whether this build may inject faults.
pub(crate) const AVAILABLE: bool = cfg!(any(debug_assertions, feature = "fault-injection"));

pub(crate) use shopnow_contract::faults::PUBLISH_DELAY;
use shopnow_contract::faults::{CRASH_AFTER_COMMIT, DELAY_PUBLISH, SKIP_PUBLISH};

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WriteFaults {
    /// Chance that a committed write skips its publish, leaving only its outbox row.
    pub skip_publish: f64,
    /// Chance that the process aborts right after a commit, before the publish.
    pub crash_after_commit: f64,
    /// Chance that a committed write waits `PUBLISH_DELAY` before its publish.
    pub delay_publish: f64,
}

impl WriteFaults {
    /// Parses `skip-publish=P,crash-after-commit=P,delay-publish=P`, each probability in 0..=1.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut faults = Self::default();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, chance) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected name=probability"))?;
            let chance: f64 = chance
                .parse()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| format!("{item:?}: the probability must be between 0 and 1"))?;
            match name {
                SKIP_PUBLISH => faults.skip_publish = chance,
                CRASH_AFTER_COMMIT => faults.crash_after_commit = chance,
                DELAY_PUBLISH => faults.delay_publish = chance,
                _ => {
                    return Err(format!(
                        "unknown fault {name:?}; known: {}",
                        shopnow_contract::faults::ALL.join(", ")
                    ))
                }
            }
        }
        Ok(faults)
    }

    pub fn should_skip_publish(&self) -> bool {
        happens(self.skip_publish)
    }

    /// Stalls the writer between its commit and its publish, now and then.
    pub async fn maybe_delay_publish(&self) {
        if happens(self.delay_publish) {
            tokio::time::sleep(PUBLISH_DELAY).await;
        }
    }

    /// Aborts the process (no destructors, no flush), as a crash or SIGKILL would.
    pub fn maybe_crash_after_commit(&self) {
        if happens(self.crash_after_commit) {
            eprintln!("shopnow: fault injection: aborting right after a commit");
            std::process::abort();
        }
    }
}

fn happens(chance: f64) -> bool {
    chance > 0.0 && rand::random::<f64>() < chance
}

impl fmt::Display for WriteFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skip-publish={},crash-after-commit={},delay-publish={}",
            self.skip_publish, self.crash_after_commit, self.delay_publish
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_parse_and_reject_nonsense() {
        let faults =
            WriteFaults::parse("skip-publish=0.5, crash-after-commit=0,delay-publish=1").unwrap();
        assert_eq!(faults.skip_publish, 0.5);
        assert_eq!(faults.crash_after_commit, 0.0);
        assert_eq!(faults.delay_publish, 1.0);
        assert!(WriteFaults::parse("skip-publish=2").is_err());
        assert!(WriteFaults::parse("explode=0.1").is_err());
        assert!(WriteFaults::parse("skip-publish").is_err());
        assert!(!WriteFaults::default().should_skip_publish());
        assert!(WriteFaults::parse("skip-publish=1")
            .unwrap()
            .should_skip_publish());
    }
}
