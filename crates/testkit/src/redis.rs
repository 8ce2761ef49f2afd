//! `redis-server` processes of one test or run: flushed, restarted, paused or stopped without
//! disturbing anybody else on the machine's Redis.

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use crate::{free_port, process};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. cluster mode).
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::try_start_with(extra_args).expect("redis-server starts (scripts/setup installs it)")
    }

    pub fn try_start_with(extra_args: &[&str]) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("shopnow-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port: free_port(),
            dir,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.try_resume()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, on the same port) and returns once it accepts connections.
    pub fn resume(&mut self) {
        self.try_resume().expect("redis-server restarts");
    }

    pub fn try_resume(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "already running");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args);
        let (child, (), _) =
            process::spawn_and_await(&mut command, Duration::from_secs(10), |line| {
                line.contains("Ready to accept connections").then_some(())
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process; the port stays reserved for `resume`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.resume();
    }

    /// A plain connection for the test's own commands.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// `CONFIG SET name value`.
    pub async fn config_set(&self, name: &str, value: &str) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut self.connection().await)
            .await
            .unwrap();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Calls per command since the last `CONFIG RESETSTAT`, from `INFO commandstats`.
pub async fn command_calls(
    connection: &mut redis::aio::MultiplexedConnection,
) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}
