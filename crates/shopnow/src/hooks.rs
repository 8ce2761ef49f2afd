//! Test and checker hooks: points where a test can hold a path to open a race window on
//! purpose. Code-level only: no configuration switches them on.

use std::sync::Arc;

use futures::future::BoxFuture;

/// A hook awaited at one point of a path, given that point's arguments.
pub type Hook<Args> = Arc<dyn Fn(Args) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Hooks {
    /// Awaited between a miss's Postgres read and its fill, with the product id: holds a reader
    /// in the window where the `delete` strategy loses its race.
    pub before_fill: Option<Hook<i64>>,
    /// Awaited between the Postgres read (or commit) behind a publish and the publish itself:
    /// holds a writer, the relay or the sampler in the window where a key loss happens.
    pub before_publish: Option<Hook<(PublishSite, i64)>>,
    /// Awaited after a write of one product joined the queue of the product's next group
    /// commit, with the product id and how many of its writes wait now: tells a test when a
    /// group is ready.
    pub write_queued: Option<Hook<(i64, usize)>>,
}

/// Which path is about to write to the cache, for `Hooks::before_publish`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishSite {
    /// A writer, between its commit and its write-through publish.
    WriteThrough,
    /// The outbox relay, between re-reading a product and publishing it.
    Relay,
    /// The consistency sampler, between finding a wrong copy and dropping it.
    Repair,
}

impl Hooks {
    pub(crate) async fn before_fill(&self, id: i64) {
        if let Some(hook) = &self.before_fill {
            hook(id).await;
        }
    }

    pub(crate) async fn write_queued(&self, product: i64, waiting: usize) {
        if let Some(hook) = &self.write_queued {
            hook((product, waiting)).await;
        }
    }

    pub(crate) async fn before_publish(&self, site: PublishSite, id: i64) {
        if let Some(hook) = &self.before_publish {
            hook((site, id)).await;
        }
    }
}
