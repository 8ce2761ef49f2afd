//! Who may read or change an order or a hold: the admin, or whoever presents the access token
//! its creation answered.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The bearer token a request presented, once told apart from the admin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bearer {
    Admin,
    Token(String),
}

impl Bearer {
    /// Whether this bearer opens what `token` guards (`None`: only the admin, as for orders
    /// placed before access tokens existed). Compared in constant time.
    pub(crate) fn opens(&self, token: Option<&str>) -> bool {
        match (self, token) {
            (Self::Admin, _) => true,
            (Self::Token(presented), Some(token)) => secrets_equal(presented, token),
            (Self::Token(_), None) => false,
        }
    }
}

/// A fresh access token for an order or a hold: 256 random bits, in hex.
pub(crate) fn new_access_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two secrets are equal, in a time that tells nothing of where they differ (their
/// digests are compared, so not even their lengths).
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    digests_equal(&digest(a), &digest(b))
}

pub(crate) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub(crate) fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_what_it_guards_and_the_admin_opens_everything() {
        let bearer = Bearer::Token("a-token".into());
        assert!(bearer.opens(Some("a-token")));
        assert!(!bearer.opens(Some("another")));
        assert!(!bearer.opens(None));
        assert!(Bearer::Admin.opens(None));
        assert!(Bearer::Admin.opens(Some("anything")));
    }
}
