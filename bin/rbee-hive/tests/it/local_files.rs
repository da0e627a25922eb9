//! `file:` downloads through the real daemon: every file it reads resolves inside an
//! `--allow-local` folder, and links are stored as the real files they lead to.

use std::path::Path;

use rbee_artifact::Sha256Digest;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Daemon, TestEnv, noise};

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Every path under `dir`: (path, is a link, contents of a regular file).
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, bool, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            let contents = meta.is_file().then(|| std::fs::read(&path).unwrap());
            out.push((path, meta.file_type().is_symlink(), contents));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_inside_an_allowed_folder_never_reach_outside_it() {
    let env = TestEnv::new().await;
    let t = env.dir.path();
    // Stands for /etc/shadow: readable by the daemon, outside what it may serve.
    let secret = noise(40_000, 77);
    write(&t.join("private/secret.bin"), &secret);
    write(&t.join("private/folder/y.gguf"), &secret);
    let allowed = t.join("allowed");
    write(&allowed.join("escape/ok.gguf"), b"fine");
    symlink(t.join("private/secret.bin"), allowed.join("escape/x.gguf"));
    write(&allowed.join("linked/ok.gguf"), b"fine");
    symlink("../../private/folder", allowed.join("linked/sub"));
    symlink(t.join("private/secret.bin"), allowed.join("direct.gguf"));
    // A HuggingFace cache snapshot inside the allowed folder: relative links into blobs/.
    let weights = noise(30_000, 5);
    write(&allowed.join("hf/blobs/h1"), &weights);
    write(&allowed.join("hf/blobs/h2"), b"{}");
    std::fs::create_dir_all(allowed.join("hf/snapshots/abc")).unwrap();
    symlink(
        "../../blobs/h1",
        allowed.join("hf/snapshots/abc/model.gguf"),
    );
    symlink(
        "../../blobs/h2",
        allowed.join("hf/snapshots/abc/config.json"),
    );

    let allowed_arg = allowed.to_str().unwrap().to_string();
    let hive = Daemon::start(&env, &["--allow-local", &allowed_arg]).await;

    // A link named directly is judged by where it leads, at once.
    let (status, body) = hive
        .post(
            "/v1/models/download",
            json!({"model_ref": format!("file:{}", allowed.join("direct.gguf").display())}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "local_files_not_allowed");

    // A link inside a folder, and a linked sub-folder, fail the job, naming the link.
    for (folder, link) in [("escape", "x.gguf"), ("linked", "sub")] {
        let reference = format!("file:{}", allowed.join(folder).display());
        let job = hive.download(&reference).await;
        let events = hive.stream(&job).await.until_final().await;
        let last = events.last().unwrap();
        assert_eq!(last.name, "error", "{reference}: {last:?}");
        let message = last.data["message"].as_str().unwrap();
        assert!(
            message.contains(link) && message.contains("leads outside"),
            "{message}"
        );
        assert!(
            !message.contains("private"),
            "the target is not revealed: {message}"
        );
    }

    // The snapshot is stored as real files, named by the links.
    let reference = format!("file:{}", allowed.join("hf/snapshots/abc").display());
    let job = hive.download(&reference).await;
    let events = hive.stream(&job).await.until_final().await;
    let done = events.last().unwrap();
    assert_eq!(done.name, "done", "{done:?}");
    let paths: Vec<&str> = done.data["result"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let stored = paths
        .iter()
        .map(Path::new)
        .find(|p| p.file_name().unwrap() == "model.gguf")
        .unwrap_or_else(|| panic!("no model.gguf in {paths:?}"));
    assert!(std::fs::symlink_metadata(stored).unwrap().is_file());
    assert_eq!(std::fs::read(stored).unwrap(), weights);

    // Nothing of the secret reached the catalog: not its digest, not its bytes, no link to it.
    let secret_digest = Sha256Digest::of(&secret).to_string();
    let (status, models) = hive.get("/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !models.to_string().contains(&secret_digest),
        "the secret's sha256 is exposed: {models}"
    );
    for model in models["models"].as_array().unwrap() {
        for file in model["files"].as_array().into_iter().flatten() {
            assert_ne!(file["size"], json!(secret.len()), "{model}");
        }
    }
    for (path, is_link, contents) in tree(&env.cache()) {
        assert!(!is_link, "the catalog holds a link: {}", path.display());
        assert_ne!(contents.as_deref(), Some(&secret[..]), "{}", path.display());
    }
}

#[tokio::test]
async fn an_allowed_folder_that_does_not_exist_is_a_usage_error() {
    let env = TestEnv::new().await;
    let missing = env.dir.path().join("no-such-folder");
    let err = Daemon::try_start(&env, &["--allow-local", missing.to_str().unwrap()], &[])
        .await
        .err()
        .expect("the daemon must refuse to start");
    assert!(
        err.contains("exit status: 2") && err.contains("--allow-local"),
        "{err}"
    );
}
