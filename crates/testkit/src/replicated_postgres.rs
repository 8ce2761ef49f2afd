//! A PostgreSQL primary with an asynchronous streaming standby, as Patroni, repmgr and
//! CloudNativePG run them by default: clients reach the primary through an endpoint that moves
//! on a failover (a proxy, as a service's DNS name or virtual IP moves), and the replication
//! link runs through a proxy the test can hold, so that commits the primary acknowledged are
//! lost on a failover for real.
//!
//! Both servers are clusters of their own (`initdb`, then `pg_basebackup` for the standby),
//! made from the machine's PostgreSQL binaries and run as the `postgres` user (Postgres refuses
//! to run as root), with data directories that are removed when this value is dropped.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::{free_port, TcpProxy};

pub struct ReplicatedPostgres {
    binaries: PathBuf,
    work: PathBuf,
    /// The server that is primary now, and the standby (until a failover leaves none).
    primary: Server,
    standby: Option<Server>,
    /// Between the standby and the primary.
    link: TcpProxy,
    /// What clients connect to: the current primary.
    endpoint: TcpProxy,
    /// Every server made, for the clean-up.
    made: Vec<Server>,
}

#[derive(Clone)]
struct Server {
    data: PathBuf,
    port: u16,
}

impl Server {
    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl ReplicatedPostgres {
    /// A primary and an asynchronous standby in sync, behind a primary endpoint.
    pub fn start() -> anyhow::Result<Self> {
        let binaries = binaries()?;
        let work =
            std::env::temp_dir().join(format!("shopnow-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&work)?;
        as_postgres_owner(&work)?;
        let primary = Server {
            data: work.join("primary"),
            port: free_port(),
        };
        run_as_postgres(
            Command::new(binaries.join("initdb"))
                .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
                .arg(&primary.data),
        )
        .context("initdb")?;
        append(
            &primary.data.join("postgresql.conf"),
            &format!(
                "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n\
                 fsync = off\nfull_page_writes = off\nmax_connections = 200\n\
                 wal_sender_timeout = 0\n",
                primary.port,
                work.display()
            ),
        )?;
        let mut replicated = Self {
            binaries,
            work: work.clone(),
            primary: primary.clone(),
            standby: None,
            link: TcpProxy::start(primary.address()),
            endpoint: TcpProxy::start(primary.address()),
            made: vec![primary.clone()],
        };
        replicated.pg_ctl(&primary, "start")?;
        replicated.add_standby()?;
        Ok(replicated)
    }

    /// `postgres://postgres@<endpoint>/<database>`: the current primary, wherever it is.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.endpoint.address())
    }

    /// The current primary, bypassing the endpoint.
    pub fn primary_url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.primary.address())
    }

    /// Holds the replication link: commits go on on the primary, the standby receives nothing.
    pub fn hold_replication(&self) {
        self.link.hold();
    }

    /// Lets the standby catch up again.
    pub fn resume_replication(&self) {
        self.link.forward();
    }

    /// Waits until the standby has replayed everything the primary has written.
    pub fn wait_in_sync(&self, limit: Duration) -> anyhow::Result<()> {
        let standby = self.standby.as_ref().context("no standby")?;
        let target = self.query(&self.primary, "SELECT pg_current_wal_lsn()")?;
        let started = Instant::now();
        while started.elapsed() < limit {
            let caught_up = self.query(
                standby,
                &format!("SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"),
            )?;
            if caught_up == "t" {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the standby did not catch up within {limit:?}")
    }

    /// The primary stops at once (what it acknowledged and did not send is lost), the standby
    /// is promoted on a new timeline, the endpoint moves to it (closing the connections to the
    /// old primary), and a new standby of it is made, so that failovers can go on.
    pub fn fail_over(&mut self) -> anyhow::Result<()> {
        let old = self.primary.clone();
        let promoted = self.standby.take().context("no standby to promote")?;
        if let Err(error) = self.pg_ctl(&old, "stop -m immediate") {
            if self.pg_ctl(&old, "status").is_ok() {
                // Still running, nothing has moved: keep the standby for a later failover.
                self.standby = Some(promoted);
                return Err(error);
            }
            // Down all the same (pg_ctl failed on its way out): the failover goes on, or the
            // endpoint would lead to a dead primary for the rest of the run.
            eprintln!("testkit: {error:#}; the primary is down all the same: promoting");
        }
        self.link.redirect(promoted.address());
        self.pg_ctl(&promoted, "promote")?;
        self.endpoint.redirect(promoted.address());
        self.primary = promoted;
        std::fs::remove_dir_all(&old.data).ok();
        self.resume_replication();
        self.add_standby()
    }

    /// The primary's timeline: 1, then one more with each failover.
    pub fn timeline(&self) -> anyhow::Result<u32> {
        let wal_file = self.query(
            &self.primary,
            "SELECT pg_walfile_name(pg_current_wal_lsn())",
        )?;
        Ok(u32::from_str_radix(&wal_file[..8], 16)?)
    }

    fn add_standby(&mut self) -> anyhow::Result<()> {
        let standby = Server {
            data: self.work.join(format!("standby-{}", self.made.len())),
            port: free_port(),
        };
        run_as_postgres(
            Command::new(self.binaries.join("pg_basebackup"))
                .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "stream", "-R"])
                // An immediate checkpoint: the default spreads it over minutes.
                .args(["--checkpoint=fast", "-p"])
                .arg(self.primary.port.to_string())
                .arg("-D")
                .arg(&standby.data),
        )
        .context("pg_basebackup")?;
        // Replication through the link, so that the test can hold it.
        append(
            &standby.data.join("postgresql.auto.conf"),
            &format!(
                "port = {}\nprimary_conninfo = 'host=127.0.0.1 port={} user=postgres'\n\
                 wal_receiver_status_interval = 1\n",
                standby.port,
                self.link.address().port()
            ),
        )?;
        self.made.push(standby.clone());
        self.pg_ctl(&standby, "start")?;
        self.standby = Some(standby);
        self.wait_in_sync(Duration::from_secs(30))
    }

    fn pg_ctl(&self, server: &Server, action: &str) -> anyhow::Result<()> {
        let log = self.work.join(format!("{}.log", server.port));
        let mut command = Command::new(self.binaries.join("pg_ctl"));
        command
            .arg("-D")
            .arg(&server.data)
            .arg("-l")
            .arg(&log)
            .arg("-w")
            .args(action.split(' '));
        run_as_postgres(&mut command).with_context(|| format!("pg_ctl {action}"))
    }

    fn query(&self, server: &Server, sql: &str) -> anyhow::Result<String> {
        let output = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atqc",
                sql,
                "-p",
            ])
            .arg(server.port.to_string())
            .output()?;
        if !output.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

impl Drop for ReplicatedPostgres {
    fn drop(&mut self) {
        for server in &self.made {
            if server.data.exists() {
                let _ = self.pg_ctl(server, "stop -m immediate");
            }
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// The newest PostgreSQL installed from Debian's packages.
fn binaries() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .context("no PostgreSQL under /usr/lib/postgresql")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let newest = versions.last().context("no PostgreSQL version installed")?;
    Ok(root.join(newest.to_string()).join("bin"))
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|user| user == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.starts_with(b"0\n"))
}

/// Postgres refuses to run as root: as root, commands run as `postgres`.
fn run_as_postgres(command: &mut Command) -> anyhow::Result<()> {
    let output = if is_root() {
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", "postgres", "--"])
            .arg(command.get_program())
            .args(command.get_args());
        wrapped.output()?
    } else {
        command.output()?
    };
    if !output.status.success() {
        bail!(
            "{:?} failed: {}{}",
            command.get_program(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn as_postgres_owner(path: &Path) -> anyhow::Result<()> {
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(path)
            .status()?;
        anyhow::ensure!(status.success(), "chown postgres {}", path.display());
    }
    Ok(())
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
