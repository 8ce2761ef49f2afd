//! What the API stores and shows: products and orders, and the validation of what clients send
//! to create or change them. Pure data: no SQL, no HTTP.

mod order;
mod product;

pub use order::{Order, OrderItem, OrderLines, OrderReceipt, OrderRequest, StoredOrder};
#[cfg(test)]
pub use order::{MAX_ITEMS, MAX_QUANTITY};
#[cfg(test)]
pub use product::MAX_PRICE_CENTS;
pub use product::{
    NewProduct, Product, ProductPatch, ProductState, StockAdjustment, StockLevel, MAX_STOCK,
};
