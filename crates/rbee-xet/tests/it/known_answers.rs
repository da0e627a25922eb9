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
