//! The rate limit of writes per client (`rate_limit`), at the edge of the routes that change
//! stock for anyone: holds (made, released), orders (placed, cancelled). Admin writes take the
//! admin token and are not counted; reads are not either (the product read does not even pass
//! here: it is served past the router).
//!
//! Every counted answer says where the client stands, in the IETF draft's headers
//! (`RateLimit-Policy: "writes";q=<burst>;w=<seconds>`, `RateLimit: "writes";r=<left>;t=<seconds
//! until whole>`); a refusal is 429 `too_many_requests` with `Retry-After`.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    error::{ApiError, ErrorCode},
    state::AppState,
};
use crate::rate_limit::Decision;

const RATE_LIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATE_LIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

pub(super) async fn limit_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !is_counted(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
    else {
        // Served without a socket (nothing here does that): nobody to count.
        return next.run(request).await;
    };
    let client = client_address(
        peer,
        request.headers(),
        state.rate_limiter.trusted_proxies(),
    );
    let Some(decision) = state.rate_limiter.count(client).await else {
        return next.run(request).await;
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        let wait_secs = decision.wait_ms.div_ceil(1000).max(1);
        let mut refused = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyRequests,
            format!(
                "this address sent more holds, orders and cancellations than {} at once; \
                 retry in {wait_secs} s",
                decision.burst
            ),
        )
        .into_response();
        refused.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(wait_secs),
        );
        refused
    };
    describe(response.headers_mut(), &decision);
    response
}

/// Holds made or released, orders placed or cancelled.
fn is_counted(method: &Method, path: &str) -> bool {
    match *method {
        Method::POST => path == "/v1/holds" || path.starts_with("/v1/orders"),
        Method::DELETE => path.starts_with("/v1/holds/"),
        _ => false,
    }
}

/// The client: the peer, or, when the peer is a trusted proxy, the nearest address in
/// `X-Forwarded-For` that is not one (each proxy appends the address it got the request from,
/// so the addresses right of the last untrusted one were written by trusted proxies; those
/// left of it by anyone).
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|address| address.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|address| !is_trusted(address))
        .unwrap_or(peer)
}

fn describe(headers: &mut HeaderMap, decision: &Decision) {
    let seconds = |ms: u64| ms.div_ceil(1000);
    let policy = format!(
        "\"writes\";q={};w={}",
        decision.burst,
        seconds(decision.window_ms)
    );
    let state = format!(
        "\"writes\";r={};t={}",
        decision.left,
        seconds(decision.whole_in_ms)
    );
    for (name, value) in [(RATE_LIMIT_POLICY, policy), (RATE_LIMIT, state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_str(forwarded).unwrap());
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        // From the trusted proxy: the client it names.
        assert_eq!(
            client_address(proxy, &headers("203.0.113.9"), &trusted),
            client
        );
        // A client that sends its own header first cannot choose: the proxy appended the
        // address it saw, and that one counts.
        assert_eq!(
            client_address(proxy, &headers("198.51.100.1, 203.0.113.9"), &trusted),
            client
        );
        // Through two trusted proxies.
        assert_eq!(
            client_address(proxy, &headers("203.0.113.9, 10.0.0.7"), &trusted),
            client
        );
        // From anyone else the header is ignored.
        let stranger: IpAddr = "198.51.100.77".parse().unwrap();
        assert_eq!(
            client_address(stranger, &headers("203.0.113.9"), &trusted),
            stranger
        );
        // Nothing usable: the proxy itself.
        assert_eq!(client_address(proxy, &headers("junk"), &trusted), proxy);
    }

    #[test]
    fn only_writes_that_change_stock_for_anyone_count() {
        assert!(is_counted(&Method::POST, "/v1/holds"));
        assert!(is_counted(&Method::POST, "/v1/orders"));
        assert!(is_counted(&Method::POST, "/v1/orders/7/cancel"));
        assert!(is_counted(&Method::DELETE, "/v1/holds/abc"));
        assert!(!is_counted(&Method::GET, "/v1/holds/abc"));
        assert!(!is_counted(&Method::GET, "/v1/orders/7"));
        assert!(!is_counted(&Method::POST, "/v1/products"));
    }
}
