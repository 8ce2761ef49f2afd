//! Faults injected into the write path, for tests and the stale-read checker.
//!
//! `SHOPNOW_FAULTS=skip-publish=0.05,crash-after-commit=0.001` gives each write that chance of
//! skipping its cache publish, or of aborting the process right after its commit: the two ways a
//! publish is lost in production. A release build honours the variable only when compiled with
//! the `fault-injection` feature, so configuration alone cannot break a production binary.

use std::fmt;

/// Whether this build may inject faults.
pub const AVAILABLE: bool = cfg!(any(debug_assertions, feature = "fault-injection"));

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WriteFaults {
    /// Chance that a committed write skips its publish, leaving only its outbox row.
    pub skip_publish: f64,
    /// Chance that the process aborts right after a commit, before the publish.
    pub crash_after_commit: f64,
}

impl WriteFaults {
    /// Parses `skip-publish=P,crash-after-commit=P`, each probability in 0..=1.
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
                "skip-publish" => faults.skip_publish = chance,
                "crash-after-commit" => faults.crash_after_commit = chance,
                _ => {
                    return Err(format!(
                        "unknown fault {name:?}; known: skip-publish, crash-after-commit"
                    ))
                }
            }
        }
        Ok(faults)
    }

    pub fn should_skip_publish(&self) -> bool {
        happens(self.skip_publish)
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
            "skip-publish={},crash-after-commit={}",
            self.skip_publish, self.crash_after_commit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_parse_and_reject_nonsense() {
        let faults = WriteFaults::parse("skip-publish=0.5, crash-after-commit=0").unwrap();
        assert_eq!(faults.skip_publish, 0.5);
        assert_eq!(faults.crash_after_commit, 0.0);
        assert!(WriteFaults::parse("skip-publish=2").is_err());
        assert!(WriteFaults::parse("explode=0.1").is_err());
        assert!(WriteFaults::parse("skip-publish").is_err());
        assert!(!WriteFaults::default().should_skip_publish());
        assert!(WriteFaults::parse("skip-publish=1")
            .unwrap()
            .should_skip_publish());
    }
}
