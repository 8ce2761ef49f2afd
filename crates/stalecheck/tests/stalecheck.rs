//! The stale-read checker, end to end: a short run is part of the suite and fails it when
//! `versioned` shows one stale read. It spawns the `shopnow` binary that `cargo test` at the
//! workspace root builds beside `stalecheck`.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_stale_check_finds_ttl_stale_and_versioned_clean() {
    let report =
        std::env::temp_dir().join(format!("stalecheck-{}.json", uuid::Uuid::new_v4().simple()));
    let output = Command::new(env!("CARGO_BIN_EXE_stalecheck"))
        .args([
            "--spawn",
            "2",
            "--strategies",
            "ttl,versioned",
            "--duration",
            "3s",
        ])
        .args([
            "--products",
            "5",
            "--readers",
            "8",
            "--writers",
            "2",
            "--sql-writers",
            "1",
            "--quiet",
            "--json",
        ])
        .arg(&report)
        .output()
        .expect("run shopnow stalecheck");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let written = std::fs::read(&report).unwrap();
    let _ = std::fs::remove_file(&report);
    let report: Value = serde_json::from_slice(&written).unwrap();
    let run = |strategy: &str| {
        report["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["strategy"] == strategy)
            .cloned()
            .unwrap()
    };
    let ttl = run("ttl");
    let versioned = run("versioned");
    assert!(
        ttl["stale_reads"].as_u64().unwrap() > 0,
        "ttl shows its bug: {ttl}"
    );
    assert_eq!(versioned["stale_reads"], 0, "{versioned}");
    assert!(
        versioned["sql_writes"].as_u64().unwrap() > 10,
        "changes made straight in Postgres are part of the check: {versioned}"
    );
    assert!(versioned["reads"].as_u64().unwrap() > 100, "{versioned}");
    for field in [
        "strategy",
        "reads",
        "writes",
        "stale_reads",
        "max_staleness_versions",
        "max_staleness_ms",
        "read_p50_ms",
        "read_p99_ms",
        "reads_per_s",
    ] {
        assert!(!versioned[field].is_null(), "{field} is reported");
    }
}

#[test]
fn stalecheck_refuses_faults_without_spawn() {
    let output = Command::new(env!("CARGO_BIN_EXE_stalecheck"))
        .args([
            "--target",
            "http://127.0.0.1:9",
            "--faults",
            "redis-flush",
            "--admin-token",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--spawn"));
}
