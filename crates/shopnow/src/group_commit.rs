//! Group commit: the writes of one product waiting on this instance go to Postgres together.
//!
//! Every write of a product takes its row lock and keeps it through its commit, whose WAL
//! flush is most of a write's time: one product's writes ran one flush after another (about
//! 600 adjustments/s here, against 1,650/s spread over many products). So the single-product
//! writes of a product queue here, and one runner per product on this instance takes what has
//! queued (up to `MOST_PER_TRANSACTION`) into one transaction: it locks the row once, runs each
//! write in a savepoint of its own (a write that fails, say 409 for stock it does not find, is
//! rolled back to its savepoint and fails alone; the others go on), commits once and publishes
//! each product's last state once. Every write is answered only after that commit and publish,
//! as before; a write that finds no queue (no other write of its product waiting) runs on its
//! own, with no savepoint, as before.
//!
//! This module keeps the queues; the catalog runs them (`Catalog::run_group`).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use sqlx::PgConnection;
use tokio::sync::oneshot;

use crate::{
    error::{Error, Result},
    model::ProductState,
};

/// Writes in one transaction at most. Postgres keeps the ids of 64 subtransactions per session
/// in shared memory; past that, every snapshot taken anywhere has to look them up on disk
/// ("subtransaction overflow"), so a group stays well below it.
pub(crate) const MOST_PER_TRANSACTION: usize = 32;

/// A change made inside a write's transaction: what to answer, and every product it changed.
pub(crate) type Change<'c, T> = BoxFuture<'c, Result<(T, Vec<ProductState>)>>;

/// A queued write, whatever it answers.
pub(crate) trait QueuedWrite: Send {
    /// Runs the change in `tx`; the products it changed, or `None` if it failed (its error is
    /// kept for its answer, and the caller rolls the transaction back to before it).
    fn run<'a>(&'a mut self, tx: &'a mut PgConnection) -> BoxFuture<'a, Option<Vec<ProductState>>>;

    /// Answers the request: what its change answered, or `failed` if its group never committed.
    fn answer(self: Box<Self>, failed: Option<&Error>);

    fn queued_at(&self) -> Instant;
}

/// A write of one product and where its answer goes.
pub(crate) struct Pending<T, F> {
    change: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    queued_at: Instant,
}

impl<T, F> Pending<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut PgConnection) -> Change<'c, T> + Send + 'static,
{
    /// The write, and the receiver of its answer.
    pub(crate) fn queued(change: F) -> (Box<dyn QueuedWrite>, oneshot::Receiver<Result<T>>) {
        let (reply, answer) = oneshot::channel();
        let pending = Self {
            change: Some(change),
            outcome: None,
            reply,
            queued_at: Instant::now(),
        };
        (Box::new(pending), answer)
    }
}

impl<T, F> QueuedWrite for Pending<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut PgConnection) -> Change<'c, T> + Send + 'static,
{
    fn run<'a>(&'a mut self, tx: &'a mut PgConnection) -> BoxFuture<'a, Option<Vec<ProductState>>> {
        Box::pin(async move {
            let change = self.change.take()?;
            match change(tx).await {
                Ok((answer, changed)) => {
                    self.outcome = Some(Ok(answer));
                    Some(changed)
                }
                Err(error) => {
                    self.outcome = Some(Err(error));
                    None
                }
            }
        })
    }

    fn answer(self: Box<Self>, failed: Option<&Error>) {
        let answer = match (failed, self.outcome) {
            // A write that failed on its own says why, whatever became of its group.
            (_, Some(Err(error))) => Err(error),
            (Some(group_error), _) => Err(group_error.for_another_write()),
            (None, Some(Ok(answer))) => Ok(answer),
            (None, None) => Err(Error::Internal(anyhow::anyhow!(
                "a write of a committed group never ran"
            ))),
        };
        // The request may have gone away; its write is done either way.
        let _ = self.reply.send(answer);
    }

    fn queued_at(&self) -> Instant {
        self.queued_at
    }
}

/// The queues of the products with a runner on this instance.
pub(crate) struct Groups {
    /// Writes a product may have queued at once; past it, 503 `busy` at once.
    most_queued: usize,
    /// Longest a write waits for its group: past it, answered 503 `busy` without running.
    longest_wait: Duration,
    queues: Mutex<HashMap<i64, VecDeque<Box<dyn QueuedWrite>>>>,
}

/// Whether the write that was just queued must start its product's runner.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// No runner was at work on the product: the caller starts one.
    StartRunner,
    /// A runner is at work on the product and will take it.
    Joined,
}

impl Groups {
    pub(crate) fn new(most_queued: usize, longest_wait: Duration) -> Self {
        Self {
            most_queued,
            longest_wait,
            queues: Mutex::default(),
        }
    }

    /// Queues `write` of `product`, and says how many of its writes wait now (this one too);
    /// `Error::Busy` (and the write dropped, unrun) when the queue is full.
    pub(crate) fn push(
        &self,
        product: i64,
        write: Box<dyn QueuedWrite>,
    ) -> Result<(Queued, usize)> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match queues.get_mut(&product) {
            Some(queue) if queue.len() >= self.most_queued => Err(Error::Busy {
                message: format!(
                    "product {product} has {} writes waiting on this instance; retry shortly",
                    self.most_queued
                ),
                cause: None,
            }),
            Some(queue) => {
                queue.push_back(write);
                Ok((Queued::Joined, queue.len()))
            }
            None => {
                queues.insert(product, VecDeque::from([write]));
                Ok((Queued::StartRunner, 1))
            }
        }
    }

    /// The next group of `product`'s runner, oldest first; empty when none is left, and then
    /// the runner is done (the next write starts a new one). Writes that waited past the bound
    /// are answered `busy` here.
    pub(crate) fn next_group(&self, product: i64) -> Vec<Box<dyn QueuedWrite>> {
        let (group, expired) = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let Some(queue) = queues.get_mut(&product) else {
                return Vec::new();
            };
            let mut group = Vec::new();
            let mut expired = Vec::new();
            while group.len() < MOST_PER_TRANSACTION {
                let Some(write) = queue.pop_front() else {
                    break;
                };
                if write.queued_at().elapsed() > self.longest_wait {
                    expired.push(write);
                } else {
                    group.push(write);
                }
            }
            if group.is_empty() && queue.is_empty() {
                queues.remove(&product);
            }
            (group, expired)
        };
        let waited = Error::Busy {
            message: format!(
                "product {product} had writes queued for over {} ms; retry shortly",
                self.longest_wait.as_millis()
            ),
            cause: None,
        };
        for write in expired {
            write.answer(Some(&waited));
        }
        group
    }
}

impl Error {
    /// This error, for another write of the same failed group.
    fn for_another_write(&self) -> Error {
        match self {
            Error::Busy { message, cause } => Error::Busy {
                message: message.clone(),
                cause: cause.clone(),
            },
            Error::Unavailable { message, cause } => Error::Unavailable {
                message,
                cause: cause.clone(),
            },
            other => Error::Internal(anyhow::anyhow!("the write's group failed: {other:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(answer: i64) -> (Box<dyn QueuedWrite>, oneshot::Receiver<Result<i64>>) {
        Pending::queued(move |_tx: &mut PgConnection| -> Change<'_, i64> {
            Box::pin(async move { Ok((answer, Vec::new())) })
        })
    }

    #[test]
    fn the_first_write_starts_the_runner_and_the_queue_is_bounded() {
        let groups = Groups::new(2, Duration::from_secs(5));
        assert_eq!(
            groups.push(1, write(1).0).ok(),
            Some((Queued::StartRunner, 1))
        );
        assert_eq!(groups.push(1, write(2).0).ok(), Some((Queued::Joined, 2)));
        assert!(matches!(
            groups.push(1, write(3).0),
            Err(Error::Busy { .. })
        ));
        assert_eq!(
            groups.push(2, write(4).0).ok(),
            Some((Queued::StartRunner, 1))
        );
        assert_eq!(groups.next_group(1).len(), 2);
        // The runner asks once more and finds nothing: the product has no runner now.
        assert!(groups.next_group(1).is_empty());
        assert_eq!(
            groups.push(1, write(5).0).ok(),
            Some((Queued::StartRunner, 1))
        );
    }

    #[test]
    fn a_group_takes_at_most_the_bound_and_leaves_the_rest_queued() {
        let groups = Groups::new(100, Duration::from_secs(5));
        for n in 0..(MOST_PER_TRANSACTION as i64 + 3) {
            let _ = groups.push(9, write(n).0);
        }
        assert_eq!(groups.next_group(9).len(), MOST_PER_TRANSACTION);
        assert_eq!(groups.next_group(9).len(), 3);
        assert!(groups.next_group(9).is_empty());
    }

    #[tokio::test]
    async fn a_write_that_waited_past_the_bound_is_answered_busy_without_running() {
        let groups = Groups::new(10, Duration::ZERO);
        let (queued, answer) = write(1);
        let _ = groups.push(3, queued);
        std::thread::sleep(Duration::from_millis(2));
        assert!(groups.next_group(3).is_empty());
        assert!(matches!(answer.await.unwrap(), Err(Error::Busy { .. })));
    }

    #[tokio::test]
    async fn every_write_of_a_failed_group_answers_its_error() {
        let (ran, ran_answer) = write(7);
        let (never, never_answer) = write(8);
        let unavailable = Error::Unavailable {
            message: "the database is unreachable; retry shortly",
            cause: "reset".into(),
        };
        ran.answer(Some(&unavailable));
        never.answer(Some(&unavailable));
        assert!(matches!(
            ran_answer.await.unwrap(),
            Err(Error::Unavailable { .. })
        ));
        assert!(matches!(
            never_answer.await.unwrap(),
            Err(Error::Unavailable { .. })
        ));
    }
}
