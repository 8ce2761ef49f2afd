//! The Redis key layout. The `{product:<id>}` hash tag puts all of one product's keys in one
//! Redis Cluster slot, so one script can touch them together.

/// The keys of one product under a deployment's prefix. Each key is formatted when asked for,
/// so a read allocates the one key it uses and nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductKeys<'a> {
    prefix: &'a str,
    id: i64,
}

impl<'a> ProductKeys<'a> {
    pub fn new(prefix: &'a str, id: i64) -> Self {
        Self { prefix, id }
    }

    /// The payload key of `ttl` and `delete`: `<prefix>:{product:<id>}`.
    pub fn plain(&self) -> String {
        format!("{}:{{product:{}}}", self.prefix, self.id)
    }

    /// The versioned copy of `versioned`: `<prefix>:{product:<id>}:current`, holding
    /// `<version>\n<json>`.
    pub fn current(&self) -> String {
        format!("{}:{{product:{}}}:current", self.prefix, self.id)
    }

    /// `current`, written into `key` (cleared first): for many keys at once without one
    /// allocation each (a list page's items).
    pub fn current_into(&self, key: &mut String) {
        use std::fmt::Write as _;
        key.clear();
        let _ = write!(key, "{}:{{product:{}}}:current", self.prefix, self.id);
    }

    /// The payload key of one version in the article's design (benchmark only):
    /// `<prefix>:{product:<id>}:v<version>`.
    pub fn payload(&self, version: i64) -> String {
        format!("{}:{{product:{}}}:v{version}", self.prefix, self.id)
    }

    /// The fill lease of `versioned`: `<prefix>:{product:<id>}:lease`.
    pub fn fill_lease(&self) -> String {
        format!("{}:{{product:{}}}:lease", self.prefix, self.id)
    }
}

/// The highest database history any instance of the deployment has seen (`stamps`):
/// `<prefix>:history`. Instances raise it when they reach a promoted database and read it to
/// learn of one, so that copies from a lost history stop being served everywhere at once.
pub fn history(prefix: &str) -> String {
    format!("{prefix}:history")
}

/// A client address's rate limit of writes (its theoretical arrival time):
/// `<prefix>:rate:<client>`, where `<client>` is an IPv4 address or an IPv6 /64.
pub fn rate_limit(prefix: &str, client: &str) -> String {
    format!("{prefix}:rate:{client}")
}

/// The keys of one list scope (a category, or `all` for the unfiltered list): its cached pages
/// and the generation they are checked against. The hash tag `{pages:<scope>}` puts a scope's
/// keys in one Redis Cluster slot, so a page and its generation are read together; the pages
/// of different categories spread over the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageKeys<'a> {
    prefix: &'a str,
    scope: &'a str,
}

impl<'a> PageKeys<'a> {
    /// `scope`: a category slug, or `all`.
    pub fn new(prefix: &'a str, scope: &'a str) -> Self {
        Self { prefix, scope }
    }

    /// The scope's generation, `<prefix>:{pages:<scope>}:gen`: a random token that every
    /// publish of a product the scope lists replaces.
    pub fn generation(&self) -> String {
        format!("{}:{{pages:{}}}:gen", self.prefix, self.scope)
    }

    /// One cached page, `<prefix>:{pages:<scope>}:<page>`, where `<page>` is the page's
    /// fingerprint (its filters, sort, size and position).
    pub fn page(&self, page: &str) -> String {
        format!("{}:{{pages:{}}}:{page}", self.prefix, self.scope)
    }
}

/// What a `versioned` copy key matches, for tools that scan a deployment's copies
/// (`SCAN MATCH`): `<prefix>:*:current`.
pub fn versioned_copies_pattern(prefix: &str) -> String {
    format!("{prefix}:*:current")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let keys = ProductKeys::new("shop", 42);
        assert_eq!(keys.plain(), "shop:{product:42}");
        assert_eq!(keys.current(), "shop:{product:42}:current");
        let mut reused = String::from("left over");
        keys.current_into(&mut reused);
        assert_eq!(reused, keys.current());
        assert_eq!(keys.fill_lease(), "shop:{product:42}:lease");
        assert_eq!(keys.payload(3), "shop:{product:42}:v3");
        assert_eq!(versioned_copies_pattern("shop"), "shop:*:current");
        let pages = PageKeys::new("shop", "shoes");
        assert_eq!(pages.generation(), "shop:{pages:shoes}:gen");
        assert_eq!(pages.page("p1"), "shop:{pages:shoes}:p1");
    }
}
