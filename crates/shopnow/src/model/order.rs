//! The order model, and the normalisation of what a client sends to place one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::Error;

pub(crate) const MAX_ITEMS: usize = 100;
pub(crate) const MAX_QUANTITY: i64 = 10_000;

/// `POST /v1/orders`: either `items`, or the `hold_id` of a live hold (with the hold's
/// `access_token` as bearer token). Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderRequest {
    /// 1 to 100 items, all in one currency; two items of one product add up (at most 10000).
    /// Or `hold_id` instead: sending both (even `"items": []`) is refused.
    #[serde(default, deserialize_with = "super::sent")]
    #[schema(value_type = Vec<OrderItemRequest>, max_items = 100)]
    pub items: Option<Vec<OrderItemRequest>>,
    /// A live hold to turn into the order: its items, at today's prices, with no second
    /// availability check (the hold set them aside).
    #[schema(example = "0b6f7c1e-2f43-4d7a-9a0e-5c1d2b3a4f5e")]
    pub hold_id: Option<String>,
}

/// Where an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed: its stock was taken.
    Confirmed,
    /// Cancelled: its stock came back.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status a row stores; `None` for a value the table's constraint does not allow.
    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "confirmed" => Some(Self::Confirmed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderItemRequest {
    #[schema(example = 42, minimum = 1)]
    pub product_id: i64,
    #[schema(example = 2, minimum = 1, maximum = 10_000)]
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: i64,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub total_cents: i64,
    #[schema(example = "USD")]
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

/// What `POST /v1/orders` answers: the order, and the secret that reads it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderReceipt {
    #[serde(flatten)]
    pub order: Order,
    /// Send it as `Authorization: Bearer <access_token>` to read the order; nobody else can
    /// (but the admin). Keep it like a password: it is shown again only to a retry with the
    /// same Idempotency-Key and the same items.
    #[schema(example = "4f1c9a2e7b3d...")]
    pub access_token: String,
}

/// An order as stored, with the token that reads it (`None` for orders placed before access
/// tokens existed).
#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub order: Order,
    pub access_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct OrderItem {
    pub product_id: i64,
    pub quantity: i64,
    /// The price when the order was placed.
    pub unit_price_cents: i64,
}

/// An order request after validation: one line per product, in product-id order.
///
/// Product-id order is the order in which the transaction locks rows, which is what keeps two
/// multi-item orders over the same products from deadlocking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderLines {
    /// product id -> quantity
    lines: BTreeMap<i64, i64>,
}

/// What an order is placed from, once its request is validated.
#[derive(Debug, Clone)]
pub(crate) enum OrderSource {
    Items(OrderLines),
    /// A hold's id (a UUID).
    Hold(uuid::Uuid),
}

impl OrderSource {
    pub(crate) fn from_request(request: &OrderRequest) -> Result<Self, Error> {
        match (&request.hold_id, &request.items) {
            (None, _) => OrderLines::from_request(request).map(Self::Items),
            (Some(_), Some(_)) => Err(Error::invalid(
                "send items or hold_id, not both: a hold's order takes the hold's items",
            )),
            (Some(id), None) => parse_hold_id(id).map(Self::Hold),
        }
    }

    /// Fingerprint stored with an Idempotency-Key.
    pub(crate) fn fingerprint(&self) -> Vec<u8> {
        match self {
            Self::Items(lines) => lines.fingerprint(),
            Self::Hold(id) => [&b"hold order\n"[..], id.as_bytes()].concat(),
        }
    }
}

/// A hold id as a client sends it: a UUID.
pub(crate) fn parse_hold_id(id: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::try_parse(id)
        .map_err(|_| Error::invalid(format!("{id:?} is not a hold id (a UUID)")))
}

impl OrderLines {
    /// Validates `request`'s items; two lines for one product are added up.
    pub(crate) fn from_request(request: &OrderRequest) -> Result<Self, Error> {
        Self::from_items(request.items.as_deref().unwrap_or_default(), "an order")
    }

    /// Validates the items of `what` (an order, a hold); two lines for one product add up.
    pub(crate) fn from_items(items: &[OrderItemRequest], what: &str) -> Result<Self, Error> {
        if items.is_empty() || items.len() > MAX_ITEMS {
            return Err(Error::invalid(format!("{what} has 1 to {MAX_ITEMS} items")));
        }
        let mut lines = BTreeMap::new();
        for item in items {
            if item.product_id <= 0 {
                return Err(Error::invalid("product_id must be a positive integer"));
            }
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                return Err(Error::invalid(format!(
                    "quantity must be between 1 and {MAX_QUANTITY}"
                )));
            }
            let quantity = lines.entry(item.product_id).or_insert(0);
            *quantity += item.quantity;
            if *quantity > MAX_QUANTITY {
                return Err(Error::invalid(format!(
                    "at most {MAX_QUANTITY} of product {} in {what}",
                    item.product_id
                )));
            }
        }
        Ok(Self { lines })
    }

    pub(crate) fn product_ids(&self) -> Vec<i64> {
        self.lines.keys().copied().collect()
    }

    pub(crate) fn quantities(&self) -> Vec<i64> {
        self.lines.values().copied().collect()
    }

    pub(crate) fn quantity_of(&self, product_id: i64) -> i64 {
        self.lines.get(&product_id).copied().unwrap_or(0)
    }

    /// Fingerprint stored with an Idempotency-Key: a retry must carry the same order, however
    /// its JSON is spelled or its items ordered.
    pub(crate) fn fingerprint(&self) -> Vec<u8> {
        let mut hash = Sha256::new();
        for (product_id, quantity) in &self.lines {
            hash.update(product_id.to_be_bytes());
            hash.update(quantity.to_be_bytes());
        }
        hash.finalize().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(items: &[(i64, i64)]) -> OrderRequest {
        OrderRequest {
            hold_id: None,
            items: Some(
                items
                    .iter()
                    .map(|&(product_id, quantity)| OrderItemRequest {
                        product_id,
                        quantity,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn lines_are_merged_and_sorted_by_product() {
        let lines = OrderLines::from_request(&request(&[(9, 1), (3, 2), (9, 4)])).unwrap();
        assert_eq!(lines.product_ids(), vec![3, 9]);
        assert_eq!(lines.quantities(), vec![2, 5]);
    }

    #[test]
    fn the_fingerprint_ignores_item_order_but_not_quantities() {
        let a = OrderLines::from_request(&request(&[(1, 1), (2, 2)])).unwrap();
        let b = OrderLines::from_request(&request(&[(2, 2), (1, 1)])).unwrap();
        let c = OrderLines::from_request(&request(&[(2, 3), (1, 1)])).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn invalid_orders_are_rejected() {
        for items in [
            vec![],
            vec![(1, 0)],
            vec![(1, -1)],
            vec![(0, 1)],
            vec![(1, MAX_QUANTITY + 1)],
            vec![(1, MAX_QUANTITY), (1, 1)],
        ] {
            assert!(
                OrderLines::from_request(&request(&items)).is_err(),
                "{items:?}"
            );
        }
        let too_many: Vec<_> = (1..=MAX_ITEMS as i64 + 1).map(|id| (id, 1)).collect();
        assert!(OrderLines::from_request(&request(&too_many)).is_err());
    }
}
