//! What the API stores and shows: products, holds and orders, and the validation of what
//! clients send to create or change them. Pure data: no SQL, no HTTP.

mod access;
mod category;
mod hold;
mod listing;
mod order;
mod product;

pub(crate) use access::{digest, digests_equal};
pub(crate) use access::{new_access_token, Bearer};
pub(crate) use category::{validate_slug, MAX_CATEGORIES, MAX_DEPTH};
pub(crate) use category::{Category, CategoryPatch, NewCategory};
pub(crate) use hold::LISTED;
pub(crate) use hold::{
    Hold, HoldItem, HoldReceipt, HoldRequest, HoldStatus, ProductHold, StoredHold,
};
pub(crate) use hold::{HoldLines, MAX_HOLD_TTL_SECS, MIN_HOLD_TTL_SECS};
pub use hold::{Reservation, Reservations};
pub(crate) use listing::{Listing, Position, Sort, SortKey, ALL_SCOPE, DEFAULT_PAGE, MAX_PAGE};
#[cfg(test)]
pub(crate) use order::MAX_ITEMS;
pub(crate) use order::MAX_QUANTITY;
pub(crate) use order::{
    parse_hold_id, OrderItemRequest, OrderLines, OrderRequest, OrderSource, StoredOrder,
};
pub use order::{Order, OrderItem, OrderReceipt, OrderStatus};
pub use product::Product;
pub(crate) use product::MAX_PRICE_CENTS;
pub(crate) use product::{
    NewProduct, ProductPatch, ProductState, StockAdjustment, StockLevel, MAX_STOCK,
};

/// For a field that may be left out: `Some` whenever it was sent, `null` included for an
/// `Option` field (`None` is a field not sent at all), so that "sent" can be told apart from
/// "left out" (serde's `default` alone cannot).
fn sent<'de, D, T>(field: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(field).map(Some)
}
