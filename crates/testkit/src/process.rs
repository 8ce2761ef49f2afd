//! Starting a process and waiting for it to say it is ready: an event (a log line), never a
//! guess at how long start-up takes.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context};

/// Lines of a starting process's stderr kept for the error when it fails to start.
const STDERR_LINES_KEPT: usize = 20;

/// The last lines a process wrote to its stdout (at most `STDOUT_LINES_KEPT`).
pub type Output = Arc<Mutex<VecDeque<String>>>;

/// Lines of a process's stdout kept for the caller to inspect (its logs).
const STDOUT_LINES_KEPT: usize = 10_000;

/// Spawns `command` with its stdout and stderr piped, and returns it once a line of its stdout
/// gives `ready` something, with what `ready` extracted. Every line is read (so the process
/// never blocks on a full pipe) and the last ones are kept in the returned `Output`. If it exits
/// or times out first, it is killed and the error carries the last lines it wrote to stderr.
pub fn spawn_and_await<T: Send + 'static>(
    command: &mut Command,
    timeout: Duration,
    ready: impl Fn(&str) -> Option<T> + Send + 'static,
) -> anyhow::Result<(Child, T, Output)> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    let stderr = child.stderr.take().context("child stderr")?;
    std::thread::spawn({
        let tail = stderr_tail.clone();
        move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == STDERR_LINES_KEPT {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    });
    let stdout = child.stdout.take().context("child stdout")?;
    let output: Output = Arc::default();
    let (found_tx, found_rx) = mpsc::channel();
    std::thread::spawn({
        let output = output.clone();
        move || {
            let mut found_tx = Some(found_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(found) = found_tx.as_ref().and_then(|_| ready(&line)) {
                    let _ = found_tx.take().map(|tx| tx.send(found));
                }
                let mut kept = output.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() == STDOUT_LINES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        }
    });
    match found_rx.recv_timeout(timeout) {
        Ok(found) => Ok((child, found, output)),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            let tail = stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
            let said: Vec<&str> = tail.iter().map(String::as_str).collect();
            bail!(
                "{program} did not become ready within {timeout:?} (exit: {status:?}); it said: {}",
                said.join(" | ")
            )
        }
    }
}

/// SIGTERM, then up to `grace` for the process to exit on its own, then SIGKILL.
pub fn terminate(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
