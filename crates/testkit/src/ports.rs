use std::net::TcpListener;

/// A loopback port that was free a moment ago. Another process may take it before the caller
/// binds it; on a test machine that is rare enough, and the caller's bind then fails loudly.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("the loopback interface has a free port")
}
