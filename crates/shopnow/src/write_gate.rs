//! A bound on the writes of one product in flight on this instance.
//!
//! Every write of a product takes its row lock. When the row is locked for long (an admin's
//! transaction left open, an ERP sync, a hot product), writes queue on the lock, each holding a
//! pooled connection while it waits: without a bound, one product would take every connection
//! and stall the whole instance. So per product, at most `in_flight` writes run (and may wait on
//! the lock, each for at most the lock timeout); up to `queued` more wait their turn here,
//! holding no connection, for at most `queue_wait`; the next ones answer 503 `busy` at once.
//! A burst of orders on one product (a flash sale) queues and goes through; a product locked
//! for long answers `busy` within about the lock timeout, and other products keep their
//! connections. Products are taken in id order, so an order over several never deadlocks here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// The limits of the gate (`SHOPNOW_MAX_WRITES_PER_PRODUCT`, `..._QUEUED_...`).
#[derive(Clone, Copy, Debug)]
pub struct GateLimits {
    pub in_flight: usize,
    pub queued: usize,
    /// Longest wait for a place; the database's lock timeout, since a place frees at least
    /// that often while the row stays locked.
    pub queue_wait: Duration,
}

pub(crate) struct WriteGate {
    limits: GateLimits,
    products: Arc<Mutex<HashMap<i64, Slot>>>,
}

/// The writes of one product: a permit each while they run, and how many run or wait.
struct Slot {
    running: Arc<Semaphore>,
    users: usize,
}

/// Holds a place for each of its products until dropped.
pub(crate) struct Pass {
    _permits: Vec<OwnedSemaphorePermit>,
    _reservation: Reservation,
}

/// The count of users taken on each product, given back on drop.
struct Reservation {
    products: Vec<i64>,
    slots: Arc<Mutex<HashMap<i64, Slot>>>,
}

impl WriteGate {
    pub(crate) fn new(limits: GateLimits) -> Self {
        Self {
            limits,
            products: Arc::default(),
        }
    }

    /// A place for a write of every product in `products` (ascending ids), or `Error::Busy`.
    pub(crate) async fn enter(&self, products: &[i64]) -> Result<Pass, Error> {
        let (reservation, semaphores) = self.reserve(products)?;
        let mut permits = Vec::with_capacity(semaphores.len());
        for (id, semaphore) in products.iter().zip(semaphores) {
            match tokio::time::timeout(self.limits.queue_wait, semaphore.acquire_owned()).await {
                Ok(Ok(permit)) => permits.push(permit),
                _ => {
                    return Err(busy(format!(
                        "product {id} had {} writes in flight for {} ms; retry shortly",
                        self.limits.in_flight,
                        self.limits.queue_wait.as_millis()
                    )))
                }
            }
        }
        Ok(Pass {
            _permits: permits,
            _reservation: reservation,
        })
    }

    /// Counts the write as a user of each product, unless one has its queue full.
    fn reserve(&self, products: &[i64]) -> Result<(Reservation, Vec<Arc<Semaphore>>), Error> {
        let capacity = self.limits.in_flight + self.limits.queued;
        let mut slots = self.products.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(full) = products
            .iter()
            .find(|id| slots.get(id).is_some_and(|slot| slot.users >= capacity))
        {
            return Err(busy(format!(
                "product {full} has {capacity} writes running or waiting on this instance; \
                 retry shortly"
            )));
        }
        let semaphores = products
            .iter()
            .map(|id| {
                let slot = slots.entry(*id).or_insert_with(|| Slot {
                    running: Arc::new(Semaphore::new(self.limits.in_flight)),
                    users: 0,
                });
                slot.users += 1;
                slot.running.clone()
            })
            .collect();
        let reservation = Reservation {
            products: products.to_vec(),
            slots: self.products.clone(),
        };
        Ok((reservation, semaphores))
    }
}

fn busy(message: String) -> Error {
    Error::Busy {
        message,
        cause: None,
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.products {
            if let Some(slot) = slots.get_mut(id) {
                slot.users -= 1;
                if slot.users == 0 {
                    slots.remove(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(in_flight: usize, queued: usize) -> WriteGate {
        WriteGate::new(GateLimits {
            in_flight,
            queued,
            queue_wait: Duration::from_millis(50),
        })
    }

    #[tokio::test]
    async fn writes_past_in_flight_wait_and_past_the_queue_are_refused() {
        let gate = gate(1, 1);
        let running = gate.enter(&[1]).await.unwrap();
        // The second waits for the first; it gets its place once the first is done.
        let waiting = tokio::spawn({
            let products = gate.products.clone();
            async move {
                let gate = WriteGate {
                    limits: GateLimits {
                        in_flight: 1,
                        queued: 1,
                        queue_wait: Duration::from_secs(5),
                    },
                    products,
                };
                gate.enter(&[1]).await.map(|_| ())
            }
        });
        tokio::task::yield_now().await;
        // The third finds the queue full: refused at once.
        assert!(matches!(gate.enter(&[1]).await, Err(Error::Busy { .. })));
        drop(running);
        assert!(waiting.await.unwrap().is_ok());
        assert!(
            gate.products.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    #[tokio::test]
    async fn a_write_that_waited_too_long_is_refused_and_frees_its_place() {
        let gate = gate(1, 4);
        let _running = gate.enter(&[7]).await.unwrap();
        assert!(matches!(gate.enter(&[7, 8]).await, Err(Error::Busy { .. })));
        let slots = gate.products.lock().unwrap();
        assert_eq!(slots.get(&7).map(|s| s.users), Some(1));
        assert!(
            slots.get(&8).is_none(),
            "the refused order gave its places back"
        );
    }
}
