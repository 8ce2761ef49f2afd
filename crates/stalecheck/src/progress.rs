//! The counters the progress display reads while a run goes on.

use std::sync::atomic::AtomicU64;

/// Operations done and failed so far, by every reader, writer and holder.
#[derive(Default)]
pub struct Progress {
    pub ops: AtomicU64,
    pub failed: AtomicU64,
}
