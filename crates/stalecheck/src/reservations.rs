//! The check of holds and cancellations: what a read shows as `reserved` and `stock` for the
//! products only holders touch, against everything the holders did.
//!
//! Every hold's life is known from the outside: when its creation was sent and acknowledged,
//! when it expires (the server's `expires_at`), and when its release or conversion into an
//! order was sent and acknowledged; every order's cancellation likewise. For a read over
//! [start, end], per product:
//! - it must count every hold acknowledged before `start` that expires after `end` plus the
//!   expiry bound, unless its end was sent before `end`; fewer is a **missed hold**;
//! - it may count only holds sent before `end`, expiring after `start` minus the bound, and not
//!   ended (release or conversion acknowledged) before `start`; more is a hold counted **past
//!   its end** (its expiry, release or conversion);
//! - its stock lies between the initial stock less every order that may be in effect and the
//!   initial stock less every order certainly in effect; below is a **missed cancellation**,
//!   above a **missed order**;
//! - `available` is `stock - reserved` and never below 0 (else **oversold**).
//!
//! A request that failed may or may not have happened: it counts on the side that allows it.
//! Reads that start inside a fault's repair window and break a rule are counted apart.

use std::collections::HashMap;

use crate::history::Window;

/// One hold a holder asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecord {
    /// Its id, once acknowledged.
    pub id: Option<String>,
    pub product: i64,
    pub quantity: i64,
    pub sent_us: u64,
    /// When its creation was acknowledged; `None` if the outcome is unknown.
    pub acked_us: Option<u64>,
    /// When it expires, in the run's time: the server's `expires_at`, or for an unknown
    /// outcome the latest it could be.
    pub expires_us: u64,
    /// Its release or conversion: when it was sent, and when acknowledged (if it was).
    pub end_sent_us: Option<u64>,
    pub end_acked_us: Option<u64>,
}

/// One order a holder placed from a hold, and its cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// Its id, once acknowledged.
    pub id: Option<i64>,
    /// The hold it was made from: with the id, what names it (a promoted database hands out a
    /// lost order's id again).
    pub hold: Option<uuid::Uuid>,
    pub product: i64,
    pub quantity: i64,
    pub sent_us: u64,
    pub acked_us: Option<u64>,
    pub cancel_sent_us: Option<u64>,
    pub cancel_acked_us: Option<u64>,
}

/// A read of a held product: what it showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRead {
    pub product: i64,
    pub start_us: u64,
    pub end_us: u64,
    pub stock: i64,
    pub reserved: i64,
    pub available: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HoldVerdict {
    pub reads: u64,
    pub holds: u64,
    pub orders: u64,
    pub cancellations: u64,
    /// A hold counted after its expiry (plus the bound), release or conversion.
    pub counted_past_end: u64,
    /// A live, acknowledged hold not counted.
    pub missed_holds: u64,
    /// Stock lower than every acknowledged cancellation allows.
    pub missed_cancellations: u64,
    /// Stock higher than every acknowledged order allows.
    pub missed_orders: u64,
    /// `available` below 0, or not `stock - reserved`.
    pub oversold: u64,
    /// Reads that broke a rule inside a fault's repair window.
    pub in_repair_window: u64,
    /// When each read that broke a rule outside the windows started, in ms since the run
    /// started: for a caller that knows of faults the checker did not inject.
    pub error_read_starts_ms: Vec<u64>,
}

impl HoldVerdict {
    pub fn errors(&self) -> u64 {
        self.counted_past_end
            + self.missed_holds
            + self.missed_cancellations
            + self.missed_orders
            + self.oversold
    }
}

pub struct HoldAllowances<'a> {
    pub windows: &'a [Window],
    /// How far from a hold's expiry a read may judge it either way (clock error).
    pub expiry_bound_us: u64,
    /// The stock every held product started with.
    pub initial_stock: i64,
}

/// What the database holds after the run: each hold's status by id, and each order's status
/// and hold by id.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub holds: HashMap<String, String>,
    pub orders: HashMap<i64, (String, Option<uuid::Uuid>)>,
}

/// Marks as of unknown outcome what was acknowledged and then lost: a failover of Postgres to
/// an asynchronous standby may lose the last commits before it, acknowledged or not. Reads
/// before the failover showed them, reads after it do not; both are right.
pub fn reconcile(holds: &mut [HoldRecord], orders: &mut [OrderRecord], kept: &Kept) {
    for hold in holds.iter_mut() {
        let Some(id) = &hold.id else { continue };
        match kept.holds.get(id).map(String::as_str) {
            None => {
                hold.acked_us = None;
                hold.end_acked_us = None;
            }
            Some("held") => hold.end_acked_us = None,
            Some(_) => {}
        }
    }
    for order in orders.iter_mut() {
        let Some(id) = order.id else { continue };
        // An order of that id made from another hold is a later one that reused the id.
        match kept.orders.get(&id).filter(|(_, hold)| *hold == order.hold) {
            None => {
                order.acked_us = None;
                order.cancel_acked_us = None;
            }
            Some((status, _)) if status == "confirmed" => order.cancel_acked_us = None,
            Some(_) => {}
        }
    }
}

pub fn check(
    reads: &[HeldRead],
    holds: &[HoldRecord],
    orders: &[OrderRecord],
    allowances: &HoldAllowances<'_>,
) -> HoldVerdict {
    let mut verdict = HoldVerdict {
        reads: reads.len() as u64,
        holds: holds.iter().filter(|h| h.acked_us.is_some()).count() as u64,
        orders: orders.iter().filter(|o| o.acked_us.is_some()).count() as u64,
        cancellations: orders
            .iter()
            .filter(|o| o.cancel_acked_us.is_some())
            .count() as u64,
        ..HoldVerdict::default()
    };
    let mut holds_of: HashMap<i64, Vec<&HoldRecord>> = HashMap::new();
    for hold in holds {
        holds_of.entry(hold.product).or_default().push(hold);
    }
    let mut orders_of: HashMap<i64, Vec<&OrderRecord>> = HashMap::new();
    for order in orders {
        orders_of.entry(order.product).or_default().push(order);
    }
    let bound = allowances.expiry_bound_us;
    for read in reads {
        let (start, end) = (read.start_us, read.end_us);
        let holds = holds_of.get(&read.product).map_or(&[][..], Vec::as_slice);
        let must: i64 = holds
            .iter()
            .filter(|h| h.acked_us.is_some_and(|acked| acked < start))
            .filter(|h| h.expires_us > end + bound)
            .filter(|h| h.end_sent_us.is_none_or(|sent| sent >= end))
            .map(|h| h.quantity)
            .sum();
        let may: i64 = holds
            .iter()
            .filter(|h| h.sent_us < end)
            .filter(|h| h.expires_us + bound > start)
            .filter(|h| h.end_acked_us.is_none_or(|acked| acked >= start))
            .map(|h| h.quantity)
            .sum();
        let orders = orders_of.get(&read.product).map_or(&[][..], Vec::as_slice);
        // Orders certainly in effect for the whole read, and those that may be.
        let certain: i64 = orders
            .iter()
            .filter(|o| o.acked_us.is_some_and(|acked| acked < start))
            .filter(|o| o.cancel_sent_us.is_none_or(|sent| sent >= end))
            .map(|o| o.quantity)
            .sum();
        let possible: i64 = orders
            .iter()
            .filter(|o| o.sent_us < end)
            .filter(|o| o.cancel_acked_us.is_none_or(|acked| acked >= start))
            .map(|o| o.quantity)
            .sum();
        let stock_max = allowances.initial_stock - certain;
        let stock_min = allowances.initial_stock - possible;

        let broken = [
            (read.reserved > may, &mut verdict.counted_past_end),
            (read.reserved < must, &mut verdict.missed_holds),
            (read.stock < stock_min, &mut verdict.missed_cancellations),
            (read.stock > stock_max, &mut verdict.missed_orders),
            (
                read.available < 0 || read.available != read.stock - read.reserved,
                &mut verdict.oversold,
            ),
        ];
        let in_window = allowances
            .windows
            .iter()
            .any(|w| (w.start_us..=w.end_us).contains(&start));
        let mut any = false;
        for (is_broken, counter) in broken {
            if is_broken {
                any = true;
                if !in_window {
                    *counter += 1;
                }
            }
        }
        if any && in_window {
            verdict.in_repair_window += 1;
        } else if any {
            verdict.error_read_starts_ms.push(start / 1000);
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: HoldAllowances<'static> = HoldAllowances {
        windows: &[],
        expiry_bound_us: 1_000,
        initial_stock: 100,
    };

    fn hold(sent: u64, acked: u64, expires: u64) -> HoldRecord {
        HoldRecord {
            id: Some("h".into()),
            product: 1,
            quantity: 2,
            sent_us: sent,
            acked_us: Some(acked),
            expires_us: expires,
            end_sent_us: None,
            end_acked_us: None,
        }
    }

    fn read(start: u64, end: u64, stock: i64, reserved: i64) -> HeldRead {
        HeldRead {
            product: 1,
            start_us: start,
            end_us: end,
            stock,
            reserved,
            available: stock - reserved,
        }
    }

    #[test]
    fn a_live_hold_must_be_counted_and_a_lapsed_one_must_not() {
        let holds = [hold(0, 10, 100_000)];
        let good = [read(20, 30, 100, 2), read(200_000, 200_010, 100, 0)];
        assert_eq!(check(&good, &holds, &[], &ALLOW).errors(), 0);
        // Around the expiry, within the bound, either is fine.
        let near = [read(99_500, 99_600, 100, 2), read(99_500, 99_600, 100, 0)];
        assert_eq!(check(&near, &holds, &[], &ALLOW).errors(), 0);

        let missed = check(&[read(20, 30, 100, 0)], &holds, &[], &ALLOW);
        assert_eq!(missed.missed_holds, 1);
        let past = check(&[read(101_500, 101_600, 100, 2)], &holds, &[], &ALLOW);
        assert_eq!(past.counted_past_end, 1);
    }

    #[test]
    fn a_released_hold_stops_counting_once_acknowledged() {
        let mut released = hold(0, 10, 1_000_000);
        released.end_sent_us = Some(50);
        released.end_acked_us = Some(60);
        let during = [read(55, 58, 100, 2), read(55, 58, 100, 0)];
        assert_eq!(check(&during, &[released.clone()], &[], &ALLOW).errors(), 0);
        let after = check(&[read(70, 80, 100, 2)], &[released], &[], &ALLOW);
        assert_eq!(after.counted_past_end, 1);
    }

    #[test]
    fn a_hold_whose_creation_failed_may_count_but_need_not() {
        let mut unknown = hold(0, 0, 1_000_000);
        unknown.acked_us = None;
        let reads = [read(20, 30, 100, 2), read(20, 30, 100, 0)];
        assert_eq!(check(&reads, &[unknown], &[], &ALLOW).errors(), 0);
    }

    #[test]
    fn an_acknowledged_cancellation_must_show_its_stock_back() {
        let order = OrderRecord {
            id: Some(7),
            hold: None,
            product: 1,
            quantity: 3,
            sent_us: 0,
            acked_us: Some(10),
            cancel_sent_us: Some(100),
            cancel_acked_us: Some(110),
        };
        let good = [
            read(20, 30, 97, 0),
            read(105, 108, 100, 0),
            read(200, 210, 100, 0),
        ];
        assert_eq!(
            check(&good, &[], std::slice::from_ref(&order), &ALLOW).errors(),
            0
        );
        let missed = check(
            &[read(200, 210, 97, 0)],
            &[],
            std::slice::from_ref(&order),
            &ALLOW,
        );
        assert_eq!(
            missed.missed_cancellations, 1,
            "stock still taken after the cancel"
        );
        let early = check(&[read(20, 30, 100, 0)], &[], &[order], &ALLOW);
        assert_eq!(early.missed_orders, 1, "stock not taken after the order");
    }

    #[test]
    fn what_a_failover_lost_is_of_unknown_outcome() {
        let mut released = hold(0, 10, 1_000_000);
        released.end_sent_us = Some(50);
        released.end_acked_us = Some(60);
        let mut holds = [hold(0, 10, 1_000_000), released];
        holds[0].id = Some("lost".into());
        let kept = Kept {
            holds: HashMap::from([("h".to_string(), "held".to_string())]),
            orders: HashMap::new(),
        };
        reconcile(&mut holds, &mut [], &kept);
        assert_eq!(holds[0].acked_us, None, "the hold's row is gone");
        assert_eq!(
            holds[1].end_acked_us, None,
            "the release was lost: still held"
        );
        // After the failover neither counts for sure, and both may.
        let reads = [read(100, 110, 100, 0), read(100, 110, 100, 4)];
        assert_eq!(check(&reads, &holds, &[], &ALLOW).errors(), 0);
    }

    #[test]
    fn available_is_stock_less_reserved_and_never_negative() {
        let mut wrong = read(0, 1, 100, 0);
        wrong.available = 99;
        assert_eq!(check(&[wrong], &[], &[], &ALLOW).oversold, 1);
    }

    #[test]
    fn broken_reads_inside_a_repair_window_are_counted_apart() {
        let holds = [hold(0, 10, 1_000_000)];
        let windows = [Window {
            start_us: 15,
            end_us: 25,
        }];
        let allowances = HoldAllowances {
            windows: &windows,
            ..ALLOW
        };
        let verdict = check(&[read(20, 30, 100, 0)], &holds, &[], &allowances);
        assert_eq!((verdict.errors(), verdict.in_repair_window), (0, 1));
    }
}
