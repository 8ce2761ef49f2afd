//! Categories: a tree of slugs that list products, and what clients send to change it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;

/// How deep the tree goes: a root is at depth 1. A shop's navigation rarely passes 4; each
/// level is one more page a product's change invalidates.
pub(crate) const MAX_DEPTH: usize = 8;
/// Categories one product may name itself (their ancestors list it too).
pub(crate) const MAX_PRODUCT_CATEGORIES: usize = 16;
/// Categories a shop may have: the tree answers in one response.
pub(crate) const MAX_CATEGORIES: i64 = 10_000;

/// A category as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct Category {
    /// Never changes; names the category in links (`GET /v1/products?category=<slug>`).
    #[schema(example = "t-shirts")]
    pub slug: String,
    #[schema(example = "T-shirts")]
    pub name: String,
    /// The parent's slug; `null` for a root.
    #[schema(example = "apparel")]
    pub parent: Option<String>,
    /// The categories under this one, by slug.
    #[serde(default)]
    pub children: Vec<String>,
}

/// `POST /v1/categories`. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCategory {
    /// Lower-case letters and digits in words joined by `-`, at most 64; never changes.
    #[schema(
        example = "t-shirts",
        pattern = "^[a-z0-9]+(-[a-z0-9]+)*$",
        max_length = 64
    )]
    pub slug: String,
    #[schema(example = "T-shirts", min_length = 1, max_length = 200)]
    pub name: String,
    /// The parent's slug; a root when omitted.
    #[serde(default)]
    pub parent: Option<String>,
}

/// `PATCH /v1/categories/{slug}`: rename, move, or both. Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub(crate) struct CategoryPatch {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// A slug moves the category (and everything under it) there; `null` makes it a root;
    /// omitted, it stays where it is.
    #[serde(default, deserialize_with = "super::sent")]
    #[schema(value_type = Option<String>, nullable)]
    pub parent: Option<Option<String>>,
}

impl NewCategory {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        validate_slug(&self.slug)?;
        validate_category_name(&self.name)?;
        self.parent.as_deref().map(validate_slug).transpose()?;
        Ok(())
    }
}

impl CategoryPatch {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.name.is_none() && self.parent.is_none() {
            return Err(Error::invalid("send at least one of name, parent"));
        }
        self.name
            .as_deref()
            .map(validate_category_name)
            .transpose()?;
        self.parent
            .iter()
            .flatten()
            .try_for_each(|parent| validate_slug(parent))
    }
}

pub(crate) fn validate_slug(slug: &str) -> Result<(), Error> {
    let words_ok = slug.split('-').all(|word| {
        !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if slug == "all" {
        return Err(Error::invalid(
            "\"all\" is not a category slug: it names the list of every product",
        ));
    }
    if slug.is_empty() || slug.len() > 64 || !words_ok {
        return Err(Error::invalid(format!(
            "{slug:?} is not a category slug: lower-case letters and digits in words joined by \
             '-', at most 64"
        )));
    }
    Ok(())
}

/// A product's categories: known slugs checked by the database; here their form and count.
pub(crate) fn validate_product_categories(slugs: &[String]) -> Result<(), Error> {
    if slugs.len() > MAX_PRODUCT_CATEGORIES {
        return Err(Error::invalid(format!(
            "a product may be in at most {MAX_PRODUCT_CATEGORIES} categories"
        )));
    }
    slugs.iter().try_for_each(|slug| validate_slug(slug))
}

fn validate_category_name(name: &str) -> Result<(), Error> {
    // The same rules as a product's name: shown to shoppers in the same places.
    super::product::validate_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_words_of_lower_case_letters_and_digits() {
        for good in ["a", "t-shirts", "size-42", "x1-y2-z3"] {
            assert!(validate_slug(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "all",
            "T-shirts",
            "-a",
            "a-",
            "a--b",
            "a b",
            "ä",
            &"a".repeat(65),
        ] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_says_what_it_changes() {
        assert!(CategoryPatch::default().validate().is_err());
        let to_root: CategoryPatch = serde_json::from_str(r#"{"parent": null}"#).unwrap();
        assert_eq!(to_root.parent, Some(None));
        assert!(to_root.validate().is_ok());
        let nothing: CategoryPatch = serde_json::from_str("{}").unwrap();
        assert!(nothing.validate().is_err());
    }
}
