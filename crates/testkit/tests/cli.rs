//! The `testkit` command the scripts use: each subcommand does what they rely on.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

fn testkit(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_testkit"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "testkit {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn free_port_prints_a_port_nobody_listens_on() {
    let port: u16 = testkit(&["free-port"]).parse().unwrap();
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[test]
fn redis_server_serves_until_its_input_closes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_testkit"))
        .arg("redis-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let port: u16 = url.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    drop(child.stdin.take()); // closing stdin stops it
    assert!(child.wait().unwrap().success());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "redis-server stopped with it"
    );
}

#[test]
fn a_database_is_created_and_dropped() {
    let url = testkit(&["create-database", "--prefix", "testkit_cli"]);
    assert!(url.contains("/testkit_cli_"), "{url}");
    let exists = |url: &str| {
        let name = url.rsplit('/').next().unwrap().to_string();
        let output = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-Atqc"])
            .arg(format!(
                "SELECT 1 FROM pg_database WHERE datname = '{name}'"
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim() == "1"
    };
    assert!(exists(&url));
    testkit(&["drop-database", &url]);
    assert!(!exists(&url));
}

#[test]
fn wait_ready_fails_when_nothing_answers() {
    let port = testkit(&["free-port"]);
    let status = Command::new(env!("CARGO_BIN_EXE_testkit"))
        .args(["wait-ready", &format!("http://127.0.0.1:{port}/readyz")])
        .args(["--timeout", "1"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
