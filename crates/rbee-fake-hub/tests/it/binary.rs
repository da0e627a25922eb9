//! The `fake-hub` binary: prints its URLs as one JSON line and serves.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{client, pattern, write};

#[tokio::test]
async fn binary_prints_urls_and_serves_with_faults() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(70_000, 30);
    write(dir.path(), "f.bin", &data);
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-hub"))
        .arg("--root")
        .arg(dir.path())
        .arg("--fault")
        .arg(r#"{"path":"f.bin","times":1,"kind":"status","status":503}"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let hub = url::Url::parse(v["hub"].as_str().unwrap()).unwrap();
    let cdn = url::Url::parse(v["cdn"].as_str().unwrap()).unwrap();
    assert_ne!(hub.host_str(), cdn.host_str());

    let c = client();
    let url = hub.join("files/f.bin").unwrap();
    assert_eq!(c.get(url.clone()).send().await.unwrap().status(), 503);
    let body = c.get(url).send().await.unwrap().bytes().await.unwrap();
    assert!(body[..] == data[..]);
    let body = c
        .get(cdn.join("files/f.bin").unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(body[..] == data[..]);

    // SIGTERM stops it cleanly.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        None
    })
    .await
    .unwrap();
    assert!(
        exited.is_some_and(|s| s.success()),
        "exits 0 on SIGTERM: {exited:?}"
    );
}

#[test]
fn binary_refuses_a_bad_fault() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fake-hub"))
        .arg("--root")
        .arg(dir.path())
        .arg("--fault")
        .arg(r#"{"kind":"nope"}"#)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fault"), "{err}");
}
