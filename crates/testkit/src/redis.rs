//! `redis-server` processes of one test or run: flushed, restarted, paused or stopped without
//! disturbing anybody else on the machine's Redis.

use std::{
    path::PathBuf,
    process::{Child, Command},
    sync::Arc,
    time::Duration,
};

use crate::{free_port, process, TestCertificates};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    /// Set for a server that speaks TLS only (`rediss://`).
    tls: Option<Arc<TestCertificates>>,
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
        Self::try_start_inner(extra_args, None)
    }

    /// Starts a server that speaks TLS only, with `certificates`, for replication and the
    /// cluster bus too.
    pub fn start_tls(certificates: &Arc<TestCertificates>, extra_args: &[&str]) -> Self {
        Self::try_start_inner(extra_args, Some(certificates.clone()))
            .expect("redis-server starts with TLS (a build with TLS support, as Debian's)")
    }

    fn try_start_inner(
        extra_args: &[&str],
        tls: Option<Arc<TestCertificates>>,
    ) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("shopnow-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port: free_port(),
            dir,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            tls,
            child: None,
        };
        server.try_resume()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The certificates of a TLS server.
    pub fn certificates(&self) -> Option<&Arc<TestCertificates>> {
        self.tls.as_ref()
    }

    /// Starts the process (again, on the same port) and returns once it accepts connections.
    pub fn resume(&mut self) {
        self.try_resume().expect("redis-server restarts");
    }

    pub fn try_resume(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "already running");
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(certificates) => command.args(certificates.redis_server_args(self.port)),
        };
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            // A replica that joins syncs at once: by default a primary waits 5 s for others to
            // share a diskless transfer, and until the sync no publish can be confirmed.
            .args(["--repl-diskless-sync-delay", "0"])
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
        let client = match &self.tls {
            None => redis::Client::open(self.url()),
            Some(certificates) => {
                redis::Client::build_with_tls(self.url(), certificates.redis_client_certificates())
            }
        };
        client
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Waits until this server, if it is a replica, has loaded its primary's data and follows
    /// its stream (polled, bounded: replication has no event a client can await).
    pub async fn wait_until_replica_in_sync(&self) {
        let mut connection = self.connection().await;
        for _ in 0..200 {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut connection)
                .await
                .unwrap();
            let in_sync = info.contains("master_link_status:up")
                && info.contains("master_sync_in_progress:0");
            if !info.contains("role:slave") || in_sync {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server {} did not sync within 10 s", self.port);
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
