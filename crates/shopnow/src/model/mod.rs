//! What the API stores and shows: products and orders, and the validation of what clients send
//! to create or change them. Pure data: no SQL, no HTTP.

mod order;
mod product;

pub use order::{Order, OrderItem, OrderReceipt};
pub(crate) use order::{OrderLines, OrderRequest, StoredOrder};
#[cfg(test)]
pub(crate) use order::{MAX_ITEMS, MAX_QUANTITY};
pub use product::Product;
#[cfg(test)]
pub(crate) use product::MAX_PRICE_CENTS;
pub(crate) use product::{
    NewProduct, ProductPatch, ProductState, StockAdjustment, StockLevel, MAX_STOCK,
};
