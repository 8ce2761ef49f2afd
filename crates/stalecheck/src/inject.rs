//! Faults the checker injects while the workload runs, each followed by the repair window in
//! which the design allows stale reads (see `history`).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::ValueEnum;

use anyhow::Context;
use testkit::{ReplicatedPostgres, ShopnowProcess, TcpProxy};

use crate::{history::Window, spawn::RunRedis};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// FLUSHALL on the checker's Redis.
    RedisFlush,
    /// DEL of every versioned copy of the run (the key that holds a product's version).
    #[value(alias = "redis-evict-pointers")]
    RedisDropCopies,
    /// Kill the checker's redis-server and start it again, empty (one node only).
    RedisRestart,
    /// With `--redis replicated`: hold replication for 300 ms (publishes the primary
    /// acknowledges never reach the replica), kill the primary, promote the replica, move the
    /// endpoint to it, and give it a new replica.
    RedisFailover,
    /// CLIENT PAUSE WRITE for a second: reads answer, publishes time out.
    RedisPause,
    /// CLIENT PAUSE ALL for `REDIS_AWAY`, longer than a hand-off's wait: Redis answers nobody,
    /// writes are acknowledged through Postgres alone, and when it resumes it still holds the
    /// copies from before them. Opens no window: what was acknowledged while it was away is
    /// never served from it (`shopnow::handoff`, stranded changes).
    RedisPauseAll,
    /// With `--postgres replicated`: hold replication for 300 ms (commits the primary
    /// acknowledges never reach the standby), stop the primary at once, promote the standby
    /// (a new timeline: the database's next history), move the endpoint to it, and give it a new
    /// standby. Opens no window: a write acknowledged after the failover must be seen from its
    /// acknowledgement, and the lost ones order below it (the checker orders by ETag stamps).
    PgFailover,
    /// A maxmemory just above what is used, with allkeys-lru, for half an interval.
    Lru,
    /// SIGKILL a spawned instance, then start it again.
    InstanceKill,
    /// Cut one spawned instance off from Redis for `PARTITION` while the others go on: its own
    /// proxy passes no byte either way and keeps the connections open, as a network that
    /// silently drops packets does (what was sent arrives afterwards, in order, as TCP's
    /// retransmissions bring it). Opens no window: an instance that cannot publish hands its
    /// writes to the other instances' relays before acknowledging them.
    InstanceRedisPartition,
    /// Cut every spawned instance off from Redis at once for `REDIS_AWAY` (each one's proxy
    /// holds, as in `instance-redis-partition`): nobody can publish, so writes are acknowledged
    /// after their hand-off gives up, and the copies Redis keeps are older than them when the
    /// network comes back. Opens no window.
    RedisPartitionAll,
    /// SIGSTOP one spawned instance for `PAUSE` (longer than a near-cache lease) while the
    /// others write, then SIGCONT: it wakes holding copies it was told to drop, and messages
    /// it has not read yet. Opens no window.
    InstancePause,
    /// CLIENT KILL TYPE pubsub: every instance loses the subscription that carries near-cache
    /// invalidations at once. Opens no window.
    SubscriptionKill,
    /// Instances abort right after a commit now and then (`SHOPNOW_FAULTS`); restarted.
    CrashAfterCommit,
    /// Instances stall a fifth of their writes between commit and publish for
    /// `faults::PUBLISH_DELAY` (`SHOPNOW_FAULTS=delay-publish=0.2`), while every copy of the run
    /// is dropped every `KEY_DROP_INTERVAL`: a stalled publish then often arrives after a newer
    /// write was acknowledged and its copy lost.
    DelayedPublish,
}

/// How long `redis-failover` and `pg-failover` hold replication before the primary dies: what
/// it acknowledged meanwhile is what the replica or standby never gets.
const REPLICATION_HELD: Duration = Duration::from_millis(300);

/// How long `instance-redis-partition` cuts an instance off from Redis: several of its Redis
/// timeouts, and longer than the relay's grace period, so its own relay takes part too.
const PARTITION: Duration = Duration::from_millis(1_500);

/// How long `redis-pause-all` and `redis-partition-all` keep Redis away from every instance:
/// longer than a hand-off waits (with the near cache, too), so writes are acknowledged
/// meanwhile that Redis never saw.
const REDIS_AWAY: Duration = Duration::from_millis(3_000);

/// How long `instance-pause` stops an instance: three near-cache leases (the default).
const PAUSE: Duration = Duration::from_millis(1_500);

/// How often the `delayed-publish` fault drops every copy of the run.
const KEY_DROP_INTERVAL: Duration = Duration::from_millis(100);

impl Fault {
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }

    /// Whether this fault is in force all run long (set on the instances when they start)
    /// rather than injected now and then.
    fn is_continuous(self) -> bool {
        matches!(self, Self::CrashAfterCommit | Self::DelayedPublish)
    }

    /// Whether the design allows stale reads while this fault lasts and for the repair bound
    /// after it: only faults that make a publish fail. Losing copies is not one of them: a lost
    /// copy is a miss, never an older version.
    fn opens_repair_window(self) -> bool {
        !matches!(
            self,
            Self::RedisFlush
                | Self::RedisDropCopies
                | Self::DelayedPublish
                | Self::PgFailover
                | Self::InstanceRedisPartition
                | Self::RedisPauseAll
                | Self::RedisPartitionAll
                | Self::InstancePause
                | Self::SubscriptionKill
        )
    }

    /// `SHOPNOW_FAULTS` for the spawned instances, when one of `faults` needs it.
    pub fn instance_faults(faults: &[Fault]) -> Option<String> {
        use shopnow_contract::faults::{spec, CRASH_AFTER_COMMIT, DELAY_PUBLISH};
        let entries: Vec<(&str, f64)> = faults
            .iter()
            .filter_map(|fault| match fault {
                Self::CrashAfterCommit => Some((CRASH_AFTER_COMMIT, 0.002)),
                Self::DelayedPublish => Some((DELAY_PUBLISH, 0.2)),
                _ => None,
            })
            .collect();
        (!entries.is_empty()).then(|| spec(&entries))
    }
}

/// What the injector did during a run.
#[derive(Debug, Default)]
pub struct Injected {
    /// Repair windows, in microseconds since the run's origin.
    pub windows: Vec<Window>,
    /// The name of each fault injected, once per injection.
    pub faults: Vec<String>,
    /// When every copy was dropped by `delayed-publish`, in microseconds since the origin.
    pub key_drops: Vec<u64>,
    /// Each injection and when it lasted, to place a broken read against.
    pub injections: Vec<Injection>,
}

/// One fault injected, from its start to its end in milliseconds since the run's origin (a
/// crash, from up to one check before it was seen).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Injection {
    pub fault: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Injection {
    fn new(fault: Fault, start: Duration, end: Duration) -> Self {
        Self {
            fault: fault.name(),
            start_ms: start.as_millis() as u64,
            end_ms: end.as_millis() as u64,
        }
    }
}

/// What faults act on.
pub struct Targets {
    pub redis: Arc<tokio::sync::Mutex<RunRedis>>,
    /// With `--postgres replicated`: the primary and its standby.
    pub postgres: Arc<Mutex<Option<ReplicatedPostgres>>>,
    pub redis_url: String,
    pub prefix: String,
    pub instances: Arc<Mutex<Vec<ShopnowProcess>>>,
    /// With `instance-redis-partition` or `redis-partition-all`: each instance's own way to
    /// Redis, in instance order.
    pub redis_links: Vec<TcpProxy>,
    /// How long after a fault the design allows stale reads (`--repair-bound`).
    pub repair_bound: Duration,
}

/// Injects `faults` in turn every `interval` until `deadline`, restarts crashed instances, and
/// drops every copy every `KEY_DROP_INTERVAL` under `delayed-publish`.
pub async fn run(
    faults: Vec<Fault>,
    interval: Duration,
    targets: Arc<Targets>,
    origin: Instant,
    deadline: Instant,
) -> Injected {
    // The continuous faults' upkeep runs beside the injections: a fault that lasts (a
    // partition, a failover) must not delay noticing a crash, whose window would then open
    // late and leave the reads the crash broke meanwhile outside it.
    let upkeep = tokio::spawn(upkeep(faults.clone(), targets.clone(), origin, deadline));
    let mut injected = Injected::default();
    let periodic: Vec<Fault> = faults
        .iter()
        .copied()
        .filter(|f| !f.is_continuous())
        .collect();
    let mut next_fault = Instant::now() + interval;
    let mut turn = 0;
    while !periodic.is_empty() && next_fault < deadline {
        tokio::time::sleep_until(next_fault.into()).await;
        let fault = periodic[turn % periodic.len()];
        turn += 1;
        next_fault = Instant::now() + interval;
        let started = origin.elapsed();
        match apply(fault, &targets, interval).await {
            Ok(()) => {
                injected.faults.push(fault.name());
                injected
                    .injections
                    .push(Injection::new(fault, started, origin.elapsed()));
                if fault.opens_repair_window() {
                    injected
                        .windows
                        .push(window(started, origin.elapsed(), targets.repair_bound));
                }
            }
            Err(error) => {
                tracing::warn!(fault = %fault.name(), error = format!("{error:#}"), "fault injection failed")
            }
        }
    }
    let kept = upkeep.await.unwrap_or_default();
    injected.faults.extend(kept.faults);
    injected.windows.extend(kept.windows);
    injected.injections.extend(kept.injections);
    injected.key_drops = kept.key_drops;
    injected
}

/// Until `deadline`, every 20 ms: restarts instances that crashed (`crash-after-commit`), and
/// drops every copy every `KEY_DROP_INTERVAL` (`delayed-publish`).
async fn upkeep(
    faults: Vec<Fault>,
    targets: Arc<Targets>,
    origin: Instant,
    deadline: Instant,
) -> Injected {
    let mut injected = Injected::default();
    let watch_crashes = faults.contains(&Fault::CrashAfterCommit);
    let drop_keys = faults.contains(&Fault::DelayedPublish);
    if !watch_crashes && !drop_keys {
        return injected;
    }
    let mut next_drop = Instant::now() + KEY_DROP_INTERVAL;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if watch_crashes {
            let started = origin.elapsed();
            let restarted = restart_crashed(targets.clone()).await;
            for _ in 0..restarted {
                injected.faults.push(Fault::CrashAfterCommit.name());
                // The crash happened up to one check before it was seen.
                let crashed = started.saturating_sub(Duration::from_millis(100));
                injected
                    .windows
                    .push(window(crashed, origin.elapsed(), targets.repair_bound));
                injected.injections.push(Injection::new(
                    Fault::CrashAfterCommit,
                    crashed,
                    origin.elapsed(),
                ));
            }
        }
        if drop_keys && Instant::now() >= next_drop {
            next_drop = Instant::now() + KEY_DROP_INTERVAL;
            match drop_copies(&targets).await {
                Ok(()) => injected.key_drops.push(origin.elapsed().as_micros() as u64),
                Err(error) => tracing::warn!(%error, "dropping copies failed"),
            }
        }
    }
    if drop_keys {
        injected.faults.push(format!(
            "{} ({} key drops)",
            Fault::DelayedPublish.name(),
            injected.key_drops.len()
        ));
    }
    injected
}

fn window(start: Duration, end: Duration, repair_bound: Duration) -> Window {
    Window {
        start_us: start.as_micros() as u64,
        end_us: (end + repair_bound).as_micros() as u64,
    }
}

async fn redis_connection(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

async fn apply(fault: Fault, targets: &Arc<Targets>, interval: Duration) -> anyhow::Result<()> {
    match fault {
        Fault::RedisFlush => {
            let mut redis = redis_connection(&targets.redis_url).await?;
            redis::cmd("FLUSHALL").query_async::<()>(&mut redis).await?;
        }
        Fault::RedisDropCopies => drop_copies(targets).await?,
        Fault::RedisRestart => {
            let mut redis = targets.redis.lock().await;
            let RunRedis::Single(server) = &mut *redis else {
                anyhow::bail!("redis-restart needs a single Redis (use redis-failover)");
            };
            server.stop();
            server.try_resume()?;
        }
        Fault::RedisFailover => {
            let mut redis = targets.redis.lock().await;
            let RunRedis::Replicated(replicated) = &mut *redis else {
                anyhow::bail!("redis-failover needs --redis replicated");
            };
            replicated.hold_replication();
            tokio::time::sleep(REPLICATION_HELD).await;
            replicated.fail_over().await;
        }
        Fault::PgFailover => {
            let postgres = targets.postgres.clone();
            postgres
                .lock()
                .expect("postgres lock")
                .as_ref()
                .context("pg-failover needs --postgres replicated")?
                .hold_replication();
            tokio::time::sleep(REPLICATION_HELD).await;
            tokio::task::spawn_blocking(move || {
                postgres
                    .lock()
                    .expect("postgres lock")
                    .as_mut()
                    .expect("checked above")
                    .fail_over()
            })
            .await??;
        }
        Fault::RedisPause => {
            let mut redis = redis_connection(&targets.redis_url).await?;
            redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(1_000)
                .arg("WRITE")
                .query_async::<()>(&mut redis)
                .await?;
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
        Fault::RedisPauseAll => {
            let mut redis = redis_connection(&targets.redis_url).await?;
            redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(REDIS_AWAY.as_millis() as u64)
                .arg("ALL")
                .query_async::<()>(&mut redis)
                .await?;
            tokio::time::sleep(REDIS_AWAY).await;
        }
        Fault::Lru => {
            let mut redis = redis_connection(&targets.redis_url).await?;
            let info: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut redis)
                .await?;
            let used: u64 = info
                .lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1 << 20);
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory-policy")
                .arg("allkeys-lru")
                .query_async::<()>(&mut redis)
                .await?;
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(used + 16 * 1024)
                .query_async::<()>(&mut redis)
                .await?;
            tokio::time::sleep(interval / 2).await;
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(0)
                .query_async::<()>(&mut redis)
                .await?;
        }
        Fault::InstanceKill => {
            let instances = targets.instances.clone();
            let victim = rand::random_range(0..instances.lock().expect("instances lock").len());
            tokio::task::spawn_blocking(move || {
                let mut instances = instances.lock().expect("instances lock");
                instances[victim].kill();
                instances[victim].resume()
            })
            .await??;
        }
        Fault::InstanceRedisPartition => {
            anyhow::ensure!(
                !targets.redis_links.is_empty(),
                "instance-redis-partition needs --spawn"
            );
            let link = &targets.redis_links[rand::random_range(0..targets.redis_links.len())];
            link.hold();
            tokio::time::sleep(PARTITION).await;
            link.forward();
        }
        Fault::RedisPartitionAll => {
            anyhow::ensure!(
                !targets.redis_links.is_empty(),
                "redis-partition-all needs --spawn"
            );
            for link in &targets.redis_links {
                link.hold();
            }
            tokio::time::sleep(REDIS_AWAY).await;
            for link in &targets.redis_links {
                link.forward();
            }
        }
        Fault::InstancePause => {
            let pid = {
                let instances = targets.instances.lock().expect("instances lock");
                anyhow::ensure!(!instances.is_empty(), "instance-pause needs --spawn");
                instances[rand::random_range(0..instances.len())].pid()
            };
            if let Some(pid) = pid {
                signal(pid, "STOP")?;
                tokio::time::sleep(PAUSE).await;
                signal(pid, "CONT")?;
            }
        }
        Fault::SubscriptionKill => {
            let mut redis = redis_connection(&targets.redis_url).await?;
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async::<i64>(&mut redis)
                .await?;
        }
        Fault::CrashAfterCommit | Fault::DelayedPublish => {}
    }
    Ok(())
}

/// Sends `kill -<name>` to a process.
fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid}: {status}");
    Ok(())
}

/// DEL of every versioned copy of the run.
async fn drop_copies(targets: &Targets) -> anyhow::Result<()> {
    let mut redis = redis_connection(&targets.redis_url).await?;
    let pattern = shopnow_contract::keys::versioned_copies_pattern(&targets.prefix);
    let copies: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut redis)
        .await?;
    if !copies.is_empty() {
        redis::cmd("DEL")
            .arg(copies)
            .query_async::<()>(&mut redis)
            .await?;
    }
    Ok(())
}

/// Restarts instances that exited on their own; returns how many.
async fn restart_crashed(targets: Arc<Targets>) -> usize {
    tokio::task::spawn_blocking(move || {
        let mut instances = targets.instances.lock().expect("instances lock");
        let mut restarted = 0;
        for instance in instances.iter_mut() {
            if !instance.is_running() && instance.resume().is_ok() {
                restarted += 1;
            }
        }
        restarted
    })
    .await
    .unwrap_or(0)
}
