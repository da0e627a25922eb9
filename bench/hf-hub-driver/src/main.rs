//! Downloads one file, or a whole repository, from a Hub endpoint with the hf-hub crate.
//!
//! Usage: hf-hub-driver ENDPOINT ORG/REPO (FILE | --snapshot) LOCAL_DIR

use std::path::PathBuf;
use std::process::ExitCode;

use hf_hub::HFClient;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hf-hub-driver: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, repo, what, dir] = args.as_slice() else {
        return Err("usage: hf-hub-driver ENDPOINT ORG/REPO (FILE | --snapshot) LOCAL_DIR".into());
    };
    let (org, name) = repo.split_once('/').ok_or("the repository is ORG/REPO")?;
    let dir = PathBuf::from(dir);
    let client = HFClient::builder()
        .endpoint(endpoint.trim_end_matches('/'))
        .cache_dir(dir.join(".hf-cache"))
        .build()?;
    let model = client.model(org, name);
    if what == "--snapshot" {
        model.snapshot_download().local_dir(dir).send().await?;
    } else {
        model
            .download_file()
            .filename(what.as_str())
            .local_dir(dir)
            .send()
            .await?;
    }
    Ok(())
}
