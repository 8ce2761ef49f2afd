//! Building and running one instance: connections, cache, background tasks, listener, and the
//! graceful shutdown.

use std::{future::Future, net::SocketAddr};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    cache::ProductCache,
    catalog::Catalog,
    config::Config,
    db,
    hooks::Hooks,
    http, janitor, lapsed_holds, lifecycle,
    lifecycle::Lifecycle,
    observability,
    rate_limit::RateLimiter,
    relay, sampler,
    sweeper::{self, SweepQueue},
    write_gate::GateLimits,
};

/// A built instance: its listener is bound, so its address is known before it serves.
pub struct Application {
    listener: TcpListener,
    api: http::Api,
    lifecycle: Lifecycle,
    catalog: Catalog,
    config: Config,
    /// The outbox rows this instance's writers published, for the sweeper to remove.
    sweep_queue: SweepQueue,
}

impl Application {
    /// Connects to Postgres (creating and migrating the database if needed), builds the cache
    /// and binds the listener. Port 0 picks a free port. `hooks` are for tests and the checker;
    /// `Hooks::default()` has none.
    pub async fn build(config: Config, hooks: Hooks) -> anyhow::Result<Self> {
        // Install the recorder before anything records, so no early sample is lost.
        observability::prometheus();
        if config.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            tracing::warn!(
                "SHOPNOW_ADMIN_TOKEN is shorter than 16 characters: easy to guess; \
                 make one with `openssl rand -hex 16`"
            );
        }
        let database = db::Database::connect_and_migrate_patiently(&config.database).await?;
        let cache = ProductCache::new(&config.cache, &config.redis, hooks.clone())?;
        // Before the first request: publishes wait for a replica if Redis has one, whatever
        // SHOPNOW_REDIS_REPLICAS says. Redis down now is no reason not to start.
        if let Err(error) = cache.observe_replication().await {
            tracing::debug!(%error, "reading redis's replication state at start failed");
        }
        cache.prepare(&database.pool).await;
        let lifecycle = Lifecycle::default();
        let (sweeper, sweep_queue) = sweeper::channel();
        let catalog = Catalog::new(
            database,
            cache,
            config.faults,
            hooks,
            GateLimits {
                in_flight: config.max_writes_per_product,
                queued: config.max_queued_writes_per_product,
                queue_wait: config.database.lock_timeout,
            },
            config.max_line_quantity,
            sweeper,
        );
        let state = http::AppState::new(
            catalog.clone(),
            config.admin_token.as_deref(),
            lifecycle.clone(),
            config.hold_ttl_secs,
            RateLimiter::new(config.rate_limit.clone(), catalog.cache().clone()),
        );
        let api = http::api(state, &config.http);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding SHOPNOW_LISTEN={}", config.listen))?;
        Ok(Self {
            listener,
            api,
            lifecycle,
            catalog,
            config,
            sweep_queue,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The instance's catalog: the same reads and writes the handlers make.
    pub fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    /// Serves until SIGTERM or SIGINT, then drains.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(lifecycle::termination_signal()).await
    }

    /// Serves until `stop` resolves, then drains: readiness goes to 503 at once, the listener
    /// closes after the drain delay, and in-flight requests get at most the shutdown timeout.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr(), "listening");
        let Self {
            listener,
            api,
            lifecycle,
            catalog,
            config,
            sweep_queue,
        } = self;
        let background = spawn_background_tasks(&catalog, &config, sweep_queue);
        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let drain_delay = config.http.drain_delay;
        let draining = lifecycle.clone();
        let graceful = async move {
            stop.await;
            draining.start_draining();
            tracing::info!(?drain_delay, "draining: readiness is now 503");
            tokio::time::sleep(drain_delay).await;
            let _ = draining_tx.send(());
        };
        let server = http::serve(listener, api, &config.http, lifecycle, graceful);
        let deadline = async move {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(config.http.shutdown_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = server => {}
            () = deadline => tracing::warn!("shutdown timeout: dropping requests still in flight"),
        }
        for task in background {
            task.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The janitor and the sweep of lapsed holds; the watch on Redis (when the strategy uses it); the outbox relay and sweeper (when the strategy publishes); the consistency
/// sampler (when the strategy caches and the rate is not 0).
fn spawn_background_tasks(
    catalog: &Catalog,
    config: &Config,
    sweep_queue: SweepQueue,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(janitor::run(
            catalog.clone(),
            config.idempotency_key_retention,
        )),
        tokio::spawn(lapsed_holds::run(
            catalog.clone(),
            config.hold_sweep_interval,
        )),
    ];
    // Ends at once when the strategy uses no Redis.
    tasks.push(tokio::spawn(crate::cache::reachability::watch(
        catalog.cache().clone(),
    )));
    // Ends at once when the strategy does not order copies by the database's history.
    tasks.push(tokio::spawn(
        catalog.cache().clone().watch_history(catalog.db().clone()),
    ));
    if catalog.cache().publishes() {
        tasks.push(tokio::spawn(relay::run(
            catalog.clone(),
            catalog.notifications().clone(),
        )));
        tasks.push(tokio::spawn(sweeper::run(
            sweep_queue,
            catalog.db().clone(),
        )));
    }
    if config.sampler_rate > 0 && config.cache.strategy != crate::cache::CacheStrategy::None {
        tasks.push(tokio::spawn(sampler::run(
            catalog.clone(),
            config.sampler_rate,
        )));
    }
    tasks
}
