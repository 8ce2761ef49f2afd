//! The HTTP edge: nothing one client sends can exhaust an instance. Raw TCP where a real
//! client would hide what is measured (trickled heads, idle sockets, kept-alive connections).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{assert_error, start_limited_process, TestApp};

/// One HTTP/1.1 request on `stream`; returns the status and the body of its answer. Knows just
/// enough HTTP for the API's answers (a Content-Length on every one).
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    stream.write_all(request).await?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
            let status = head[9..12].parse().expect("a status code");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if received.len() >= end + 4 + length {
                return Ok((status, received[end + 4..end + 4 + length].to_vec()));
            }
        }
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&buffer[..read]);
    }
}

const LIVEZ: &[u8] = b"GET /livez HTTP/1.1\r\nHost: shopnow\r\n\r\n";

/// Whether the server closes `stream` within `limit` (a read answers end of file or an error).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn a_client_trickling_a_request_head_is_cut_off() {
    let app = TestApp::builder()
        .with_config(|c| c.http.header_read_timeout = Duration::from_millis(500))
        .spawn()
        .await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut cut_off = false;
    // The attack: one byte of a header every 100 ms, for at most 5 s.
    while started.elapsed() < Duration::from_secs(5) {
        if stream.write_all(b"a").await.is_err()
            || closed_within(&mut stream, Duration::from_millis(100)).await
        {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the trickling connection was still open after 5 s");
    assert!(started.elapsed() >= Duration::from_millis(400));
}

/// The head timeout of a kept-alive connection's next request runs from its first byte, and
/// the watchdog, which sleeps through phases, still enforces it long before the idle timeout.
#[tokio::test]
async fn a_kept_alive_connection_stalling_in_its_next_head_is_cut_off_at_the_head_timeout() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.http.header_read_timeout = Duration::from_millis(500);
            c.http.idle_timeout = Duration::from_secs(30);
        })
        .spawn()
        .await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let (status, _) = exchange(&mut stream, LIVEZ).await.unwrap();
    assert_eq!(status, 200);
    // Idle for longer than a head timeout (so that the watchdog has looked at the connection
    // while it was idle and found its deadline 30 s away), then half a head, then nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    let stalled = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        "a connection stalled in its second head outlived the head timeout"
    );
    let took = stalled.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "cut off after {took:?}, before its head timeout"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_a_busy_one_is_kept_alive() {
    let app = TestApp::builder()
        .with_config(|c| c.http.idle_timeout = Duration::from_millis(600))
        .spawn()
        .await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    // Requests 200 ms apart for 2 s: three times the idle timeout, on one connection.
    for _ in 0..10 {
        let (status, _) = exchange(&mut stream, LIVEZ).await.unwrap();
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        "an idle connection outlived the idle timeout"
    );
}

/// With few file descriptors, a flood of idle connections once stopped an instance accepting
/// anything. Now the connection cap keeps it below the limit: a client served before the flood
/// goes on being served (silent sockets make room before it does), and new ones are accepted.
#[tokio::test]
async fn a_flood_of_idle_connections_neither_exhausts_descriptors_nor_stops_serving() {
    let app = TestApp::builder().spawn().await;
    let instance = start_limited_process(
        &app.config,
        &[
            ("SHOPNOW_HTTP_MAX_CONNECTIONS", "100"),
            ("SHOPNOW_HTTP_IDLE_TIMEOUT_MS", "500"),
        ],
        Some(256),
    );
    let address = instance.address;
    // A client served before the flood (a connection that never sent a byte is the first to
    // make room, which is what the flood's are), asking every 100 ms all along.
    let mut kept = TcpStream::connect(address).await.unwrap();
    assert_eq!(exchange(&mut kept, LIVEZ).await.unwrap().0, 200);
    let kept_client = tokio::spawn(async move {
        for n in 1..30 {
            let answered =
                tokio::time::timeout(Duration::from_secs(2), exchange(&mut kept, LIVEZ)).await;
            assert!(
                matches!(answered, Ok(Ok((200, _)))),
                "request {n} of the kept connection: {answered:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut flood = Vec::new();
    for _ in 0..400 {
        flood.push(TcpStream::connect(address).await.unwrap());
    }
    kept_client.await.unwrap();
    // A new client is served once idle connections time out and make room.
    let started = Instant::now();
    let mut newcomer = TcpStream::connect(address).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(15), exchange(&mut newcomer, LIVEZ))
        .await
        .expect("a new connection is served within 15 s");
    assert_eq!(answered.unwrap().0, 200);
    println!("a new client was served after {:?}", started.elapsed());
    drop(flood);
}

#[tokio::test]
async fn oversized_heads_and_uris_get_json_errors_and_the_instance_goes_on() {
    let app = TestApp::builder().spawn().await;
    let big_header = "a".repeat(20 * 1024);
    let response = app
        .client
        .get(app.url("/livez"))
        .header("x-padding", &big_header)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::from_u16(431).unwrap(),
        "header_too_large",
    )
    .await;

    let long_path = format!("/v1/products?after=1&q={}", "b".repeat(10 * 1024));
    assert_error(
        app.get(&long_path).await,
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
    )
    .await;

    // Far past the cap, hyper refuses the head before parsing it: still 431, never memory.
    let huge_header = "c".repeat(200 * 1024);
    let refused = app
        .client
        .get(app.url("/livez"))
        .header("x-padding", &huge_header)
        .send()
        .await;
    if let Ok(response) = refused {
        assert_eq!(response.status().as_u16(), 431);
    }
    assert_eq!(app.get("/livez").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refused_request_with_a_body_keeps_the_connection_alive() {
    let app = TestApp::builder().spawn().await;
    // Larger than one packet: hyper cannot drain it when a handler answers without reading it.
    let body = format!(
        r#"{{"sku": "KEEP-1", "name": "x", "price_cents": 1, "description": "{}"}}"#,
        "d".repeat(40 * 1024)
    );
    let unauthorized = format!(
        "POST /v1/products HTTP/1.1\r\nHost: shopnow\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let not_allowed = format!(
        "POST /livez HTTP/1.1\r\nHost: shopnow\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    for (request, expected) in [(unauthorized, 401), (not_allowed, 405)] {
        let (status, body) = exchange(&mut stream, request.as_bytes()).await.unwrap();
        assert_eq!(status, expected);
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert!(error["error"].is_string(), "{error}");
        // The same connection answers the next request.
        let (next, _) = exchange(&mut stream, LIVEZ)
            .await
            .unwrap_or_else(|e| panic!("the connection closed after a {expected}: {e}"));
        assert_eq!(next, 200);
    }
}

#[tokio::test]
async fn request_ids_are_echoed_only_when_short_and_plain() {
    let app = TestApp::builder().spawn().await;
    let id_of = |sent: &'static str| {
        let request = app
            .client
            .get(app.url("/livez"))
            .header("x-request-id", sent);
        async move {
            request.send().await.unwrap().headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(
        id_of("checkout-7f3a.retry_2").await,
        "checkout-7f3a.retry_2"
    );
    for bad in ["has space", "quote\"d", "<script>", "x".repeat(200).leak()] {
        let echoed = id_of(bad).await;
        assert_ne!(echoed, bad);
        assert_eq!(echoed.len(), 36, "a fresh UUID instead of {bad:?}");
    }
}

#[tokio::test]
async fn a_body_larger_than_the_limit_is_refused_and_the_next_request_still_works() {
    let app = TestApp::builder()
        .with_config(|c| c.http.body_limit_bytes = 1024)
        .spawn()
        .await;
    let response = app
        .admin(reqwest::Method::POST, "/v1/products")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"sku": "BIG", "name": "{}"}}"#,
            "n".repeat(4096)
        ))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(app.get("/livez").await.status(), StatusCode::OK);
}

/// A declared length over the limit is refused at once, before the body (which may never come:
/// the probe declared 1,000,000,000 bytes and sent 2, and waited 10 s for a 408).
#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_at_once() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.http.body_limit_bytes = 1024;
            c.http.body_read_timeout = Duration::from_secs(30);
        })
        .spawn()
        .await;
    let mut socket = TcpStream::connect(address(&app)).await.unwrap();
    socket
        .write_all(
            b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000000000\r\n\r\n{}",
        )
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    // Bounded well below the body read timeout: the answer must not wait for the body.
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut answer))
        .await
        .expect("answered before the body read timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

/// The probe's lockout: sockets that never send a byte were held for the idle timeout (75 s),
/// so 640 of them locked every other client out. Now they are the first to make room, and a new
/// client is answered within a second, at any moment.
#[tokio::test]
async fn two_thousand_silent_sockets_do_not_lock_a_new_client_out() {
    let app = TestApp::builder().spawn().await;
    // The defaults (512 connections, a 10 s head timeout), in a process of its own.
    let instance = start_limited_process(&app.config, &[], Some(4096));
    let address = instance.address;
    let mut silent = Vec::new();
    for _ in 0..2000 {
        // A connect the kernel cannot queue would hang: bounded, and counted.
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(address)).await
        {
            silent.push(stream);
        }
    }
    // A SYN the kernel drops is sent again a second later, so a few may be missing.
    assert!(
        silent.len() >= 1990,
        "only {} silent sockets connected",
        silent.len()
    );
    // A new client every 250 ms for 3 s, each answered within 1 s.
    for n in 0..12 {
        let started = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(1), async {
            let mut stream = TcpStream::connect(address).await?;
            exchange(&mut stream, LIVEZ).await
        })
        .await;
        assert!(
            matches!(answered, Ok(Ok((200, _)))),
            "client {n} after {:?}: {answered:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(silent);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_head_timeout() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.http.header_read_timeout = Duration::from_millis(500);
            c.http.idle_timeout = Duration::from_secs(60);
        })
        .spawn()
        .await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "a silent connection was held past the head timeout"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
}

/// At the cap, a connection kept alive between requests makes room for a new one.
#[tokio::test]
async fn at_the_cap_an_idle_keep_alive_connection_makes_room() {
    let app = TestApp::builder()
        .with_config(|c| c.http.max_connections = 2)
        .spawn()
        .await;
    let mut first = TcpStream::connect(address(&app)).await.unwrap();
    let mut second = TcpStream::connect(address(&app)).await.unwrap();
    for stream in [&mut first, &mut second] {
        assert_eq!(exchange(stream, LIVEZ).await.unwrap().0, 200);
    }
    let mut third = TcpStream::connect(address(&app)).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(1), exchange(&mut third, LIVEZ)).await;
    assert_eq!(answered.expect("served at once").unwrap().0, 200);
    assert!(
        closed_within(&mut first, Duration::from_secs(1)).await,
        "the connection idle the longest made room"
    );
    assert_eq!(exchange(&mut second, LIVEZ).await.unwrap().0, 200);
}

/// A client that stops sending its body gets 408: its fault, not the server's (no 503, no
/// server-error alert).
#[tokio::test]
async fn a_stalled_body_answers_408() {
    let app = TestApp::builder()
        .with_config(|c| c.http.body_read_timeout = Duration::from_millis(300))
        .spawn()
        .await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let request =
        b"POST /v1/orders HTTP/1.1\r\nHost: shopnow\r\nContent-Type: application/json\r\n\
                    Content-Length: 100\r\n\r\n{\"items\": [";
    let (status, body) = exchange(&mut stream, request).await.unwrap();
    assert_eq!(status, 408);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"], "request_timeout");
}

/// Whatever is wrong with a request, the answer is the API's JSON error.
#[tokio::test]
async fn requests_hyper_refuses_get_json_errors_too() {
    let app = TestApp::builder().spawn().await;
    let many_headers: String = (0..120).map(|n| format!("x-h{n}: 1\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "two different Content-Lengths",
            b"POST /v1/orders HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a negative Content-Length",
            b"POST /v1/orders HTTP/1.1\r\nHost: s\r\nContent-Length: -1\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a folded header",
            b"GET /livez HTTP/1.1\r\nHost: s\r\nX-A: a\r\n b\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a control byte in the target",
            b"GET /li\x01vez HTTP/1.1\r\nHost: s\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "120 headers",
            format!("GET /livez HTTP/1.1\r\nHost: s\r\n{many_headers}\r\n").into_bytes(),
            431,
            "header_too_large",
        ),
        (
            "a bad chunk size",
            b"POST /v1/orders HTTP/1.1\r\nHost: s\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                .to_vec(),
            400,
            "bad_request",
        ),
    ];
    for (what, request, expected_status, expected_code) in cases {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        let (status, body) = exchange(&mut stream, &request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let error: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{what}: {e}: {:?}", String::from_utf8_lossy(&body)));
        assert_eq!(
            (status, error["error"].as_str()),
            (expected_status, Some(expected_code)),
            "{what}: {error}"
        );
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // A body cut off inside its JSON is malformed JSON, not an invalid value.
    let truncated = app
        .client
        .post(app.url("/v1/orders"))
        .header("content-type", "application/json")
        .body(r#"{"a":"#)
        .send()
        .await
        .unwrap();
    assert_error(truncated, StatusCode::BAD_REQUEST, "malformed_json").await;
    assert_eq!(app.get("/livez").await.status(), StatusCode::OK);
}

/// At the cap, connections that sent one byte of a head and then nothing are not "in the
/// middle of a request" for ever: one stalled longer than a second makes room for a new
/// client, who is answered long before the head timeout (a probe kept 600 such connections
/// open and made every new client wait 8 s).
#[tokio::test]
async fn at_the_cap_a_connection_stalled_inside_its_head_makes_room() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.http.max_connections = 2;
            c.http.header_read_timeout = Duration::from_secs(30);
        })
        .spawn()
        .await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        stream.write_all(b"G").await.unwrap();
        stalled.push(stream);
    }
    let started = Instant::now();
    let mut client = TcpStream::connect(address(&app)).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(5), exchange(&mut client, LIVEZ)).await;
    assert_eq!(answered.expect("answered").unwrap().0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut closed = 0;
    for stream in &mut stalled {
        if closed_within(stream, Duration::from_millis(100)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 1, "the one stalled the longest made room");
}
