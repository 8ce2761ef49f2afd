//! What `stalecheck --spawn` starts: its own `redis-server`, a fresh database, and instances of
//! this very binary, all on free loopback ports, all stopped when the run ends.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{bail, Context};

use crate::cache::CacheStrategy;

/// Longest wait for a process to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits for a line of `child`'s stdout that `ready` accepts, and returns what it extracted.
fn await_line<T: Send + 'static>(
    child: &mut Child,
    ready: impl Fn(&str) -> Option<T> + Send + 'static,
) -> anyhow::Result<T> {
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(found) = ready(&line) {
                let _ = tx.send(found);
            }
        }
    });
    rx.recv_timeout(START_TIMEOUT)
        .context("the process did not become ready in time")
}

/// A `redis-server` of the checker's own, so that flushing or restarting it disturbs nobody.
pub struct OwnRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "shopnow-stalecheck-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut redis = Self {
            port: free_port()?,
            dir,
            child: None,
        };
        redis.resume()?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn resume(&mut self) -> anyhow::Result<()> {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (is it installed? scripts/setup installs it)")?;
        await_line(&mut child, |line| {
            line.contains("Ready to accept connections").then_some(())
        })?;
        self.child = Some(child);
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Everything an instance is started with.
#[derive(Clone, Debug)]
pub struct InstanceSpec {
    pub database_url: String,
    pub redis_url: String,
    pub strategy: CacheStrategy,
    pub prefix: String,
    pub admin_token: String,
    pub fill_delay_ms: Option<u64>,
    /// `SHOPNOW_FAULTS` for the instance, e.g. `crash-after-commit=0.002`.
    pub faults: Option<String>,
}

/// One spawned `shopnow serve`.
pub struct Instance {
    pub addr: SocketAddr,
    spec: InstanceSpec,
    child: Option<Child>,
}

impl Instance {
    pub fn start(spec: &InstanceSpec) -> anyhow::Result<Self> {
        let mut instance = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            spec: spec.clone(),
            child: None,
        };
        instance.resume()?;
        Ok(instance)
    }

    /// Starts the process (again) on the instance's port and waits until it listens.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locating the shopnow binary")?;
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .env("DATABASE_URL", &self.spec.database_url)
            .env("REDIS_URL", &self.spec.redis_url)
            .env("SHOPNOW_REDIS_CLUSTER", "0")
            .env("SHOPNOW_CACHE_STRATEGY", self.spec.strategy.as_str())
            .env("SHOPNOW_CACHE_PREFIX", &self.spec.prefix)
            .env("SHOPNOW_ADMIN_TOKEN", &self.spec.admin_token)
            .env("SHOPNOW_LISTEN", self.addr.to_string())
            .env("SHOPNOW_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,shopnow::app=info")
            // The sampler repairs what it finds, which would hide the naive strategies' bugs.
            .env("SHOPNOW_SAMPLER_RATE", "0")
            .env_remove("SHOPNOW_FAULTS")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(delay) = self.spec.fill_delay_ms {
            command.args(["--fill-delay-ms", &delay.to_string()]);
        }
        if let Some(faults) = &self.spec.faults {
            command.env("SHOPNOW_FAULTS", faults);
        }
        let mut child = command.spawn().context("starting a shopnow instance")?;
        let listening = await_line(&mut child, |line| {
            line.contains("\"listening\"").then_some(())
        });
        if let Err(error) = listening {
            let _ = child.kill();
            let status = child.wait().ok();
            bail!(
                "instance on {} did not start ({status:?}): {error:#}",
                self.addr
            );
        }
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, as a crashed host or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process has exited on its own (an injected crash).
    pub fn has_exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// SIGTERM, then wait for the graceful shutdown, bounded.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            for _ in 0..100 {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
