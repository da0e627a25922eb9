//! Hashes and chunk boundaries checked against answers the reference implementation gave.

use rbee_xet::{XetHash, file_hash_with_salt, xorb_hash};

fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// xet-core's own reference vectors for the aggregation tree (`aggregated_hashes.rs`,
/// `test_correctness`): node hashes and lengths → xorb hash, and file hashes under three salts.
#[test]
fn aggregation_matches_xet_core_reference_vectors() {
    let cases = fixture("aggregated_hashes.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for (i, case) in cases.iter().enumerate() {
        let nodes: Vec<(XetHash, u64)> = case["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    XetHash::from_hex(n[0].as_str().unwrap()).unwrap(),
                    n[1].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            xorb_hash(&nodes).to_hex(),
            case["xorb_hash"].as_str().unwrap(),
            "case {i}"
        );
        for salted in case["file_hashes"].as_array().unwrap() {
            let salt = XetHash::from_hex(salted["salt"].as_str().unwrap()).unwrap();
            assert_eq!(
                file_hash_with_salt(&nodes, salt.as_bytes()).to_hex(),
                salted["file_hash"].as_str().unwrap(),
                "case {i}, salt {salt}"
            );
        }
    }
}

/// The fixture bytes: SHA-256 in counter mode, as `make_client_file_hashes.py` makes them.
fn generate(case: &serde_json::Value) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let seed = case["seed"].as_str().unwrap().as_bytes();
    let len = case["len"].as_u64().unwrap() as usize;
    let runs = case["pattern"].as_str().unwrap() == "runs";
    let block = |i: u64| -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(i.to_le_bytes());
        h.finalize().to_vec()
    };
    let mut out = Vec::with_capacity(len + 200);
    let mut i = 0u64;
    while out.len() < len {
        if runs {
            let b = block(i / 3);
            for _ in 0..=(i % 5) {
                out.extend_from_slice(&b);
            }
        } else {
            out.extend_from_slice(&block(i));
        }
        i += 1;
    }
    out.truncate(len);
    if let Some(hole) = case.get("zero_hole") {
        let (a, b) = (
            hole[0].as_u64().unwrap() as usize,
            hole[1].as_u64().unwrap() as usize,
        );
        out[a..b].fill(0);
    }
    out
}

/// File hashes the real client (`hf_xet.hash_files`) computed on generated files: equal
/// hashes prove our chunk boundaries, chunk hashes and aggregation all match xet-core's.
#[test]
fn file_hashes_match_the_real_client() {
    let fixture = fixture("client_file_hashes.json");
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let data = generate(case);
        let mut entries = Vec::new();
        let mut start = 0;
        for end in rbee_xet::chunk_boundaries(&data) {
            entries.push((
                rbee_xet::chunk_hash(&data[start..end]),
                (end - start) as u64,
            ));
            start = end;
        }
        assert_eq!(
            rbee_xet::file_hash(&entries).to_hex(),
            case["file_hash"].as_str().unwrap(),
            "{name}: {} chunks",
            entries.len()
        );
    }
}
