//! The `shopnow` binary as a process of its own: for tests that kill an instance, and for the
//! checker, which starts and restarts instances.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use crate::process;

/// Longest wait for an instance to log that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ShopnowProcess {
    binary: PathBuf,
    args: Vec<String>,
    /// `RLIMIT_NOFILE` of the process, when the test sets one.
    open_files_limit: Option<u32>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// What the current process wrote to stdout: its log, one JSON object a line.
    output: process::Output,
    /// The address the instance logged it listens on.
    pub address: SocketAddr,
}

impl ShopnowProcess {
    /// Starts `binary serve` with exactly `env` on top of the caller's environment (JSON logs
    /// forced, so the `listening` line can be read) and returns once it listens. With
    /// `SHOPNOW_LISTEN` on a fixed port, `resume` starts it again on the same address.
    pub fn start(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_limited(binary, args, env, None)
    }

    /// `start`, with the process's open-file limit (`RLIMIT_NOFILE`) set to `open_files`.
    pub fn start_limited(
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u32>,
    ) -> anyhow::Result<Self> {
        let mut process = Self {
            binary: binary.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            open_files_limit: open_files,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            output: Default::default(),
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        process.resume()?;
        Ok(process)
    }

    /// Starts the process (again) and waits until it listens.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.is_running(), "already running");
        self.child = None;
        let mut command = match self.open_files_limit {
            None => Command::new(&self.binary),
            Some(limit) => {
                let mut prlimit = Command::new("prlimit");
                prlimit
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(&self.binary);
                prlimit
            }
        };
        command
            .arg("serve")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SHOPNOW_LOG_FORMAT", "json");
        let (child, address, output) =
            process::spawn_and_await(&mut command, START_TIMEOUT, |line| {
                let log: serde_json::Value = serde_json::from_str(line).ok()?;
                (log["message"] == "listening")
                    .then(|| log["address"].as_str()?.parse::<SocketAddr>().ok())
                    .flatten()
            })?;
        self.child = Some(child);
        self.address = address;
        self.output = output;
        Ok(())
    }

    /// The log lines the process has written so far, parsed.
    pub fn log(&self) -> Vec<serde_json::Value> {
        let lines = self.output.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// SIGKILL, as a crashed host or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the graceful shutdown, bounded at 5 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, Duration::from_secs(5));
        }
    }

    /// Whether the process runs (it may have exited on its own: an injected crash).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for ShopnowProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
