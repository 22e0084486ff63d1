//! `.params` files written by MXNet 1.9.1 (and hand-built legacy records it
//! loads) against the manifests the fixture script recorded from MXNet.

use mxnet::format::params::{load_params, save_params};
use mxnet::{DType, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/params")
}

fn manifests() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".params.json") {
            let manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.push((path.with_extension(""), manifest));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no params fixtures found");
    out
}

fn expected_value(v: &Value) -> f64 {
    match v {
        Value::Bool(b) => *b as u8 as f64,
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        other => other.as_f64().unwrap(),
    }
}

fn check_array(file: &str, t: &Tensor, want: &Value) {
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(
        t.shape(),
        shape.as_slice(),
        "{file}: shape of {}",
        want["name"]
    );
    assert_eq!(
        t.dtype().flag() as i64,
        want["type_flag"].as_i64().unwrap(),
        "{file}: dtype of {}",
        want["name"]
    );
    let values: Vec<f64> = want["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(expected_value)
        .collect();
    let ours: Vec<f64> = match t.dtype() {
        DType::F64 => t.as_slice::<f64>().unwrap().to_vec(),
        DType::I64 => t
            .as_slice::<i64>()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        _ => t.to_f32_vec().into_iter().map(f64::from).collect(),
    };
    assert_eq!(
        ours.len(),
        values.len(),
        "{file}: element count of {}",
        want["name"]
    );
    for (i, (&a, &b)) in ours.iter().zip(&values).enumerate() {
        // Manifest numbers are decimal text, so allow for the last printed digit.
        let same = a == b || (a - b).abs() <= b.abs() * 1e-7 || (a.is_nan() && b.is_nan());
        assert!(same, "{file}: element {i} of {}: {a} != {b}", want["name"]);
    }
}

#[test]
fn params_fixtures_load_like_mxnet() {
    for (path, manifest) in manifests() {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let result = load_params(&bytes);
        if file.starts_with("trailing_bytes") {
            // MXNet 1.9.1 ignores bytes after the name list; we reject them as
            // a sign of a corrupt or concatenated file (see docs/compatibility.md).
            let msg = result
                .expect_err("trailing bytes must be rejected")
                .to_string();
            assert!(msg.contains("trailing"), "{file}: {msg}");
            continue;
        }
        if file.starts_with("sparse_") {
            // Sparse storage never occurs in inference models; it is rejected by design.
            let msg = result
                .expect_err("sparse arrays must be rejected")
                .to_string();
            assert!(msg.contains("not supported"), "{file}: {msg}");
            continue;
        }
        if manifest["mxnet_load"] != "ok" {
            assert!(result.is_err(), "{file}: MXNet rejects it, we loaded it");
            continue;
        }
        let list = result.unwrap_or_else(|e| panic!("{file}: {e}"));
        let arrays = manifest["arrays"].as_array().unwrap();
        assert_eq!(list.arrays.len(), arrays.len(), "{file}: array count");
        let named = manifest["named"].as_bool().unwrap_or(true);
        for (i, want) in arrays.iter().enumerate() {
            if named {
                assert_eq!(
                    list.names[i],
                    want["name"].as_str().unwrap(),
                    "{file}: name {i}"
                );
            }
            match &list.arrays[i] {
                Some(t) => check_array(&file, t, want),
                None => assert!(
                    want["shape"].is_null() || want["none"] == true,
                    "{file}: array {i} loaded as none"
                ),
            }
        }
    }
}

#[test]
fn save_matches_mxnet_bytes() {
    let mut checked = 0;
    for (path, manifest) in manifests() {
        let written_by_mxnet = manifest["written_by"]
            .as_str()
            .unwrap_or("")
            .starts_with("mx.nd.save");
        if !written_by_mxnet || manifest["mxnet_load"] != "ok" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let Ok(list) = load_params(&bytes) else {
            continue;
        };
        if list.arrays.iter().any(Option::is_none) {
            continue;
        }
        let arrays: Vec<&Tensor> = list.arrays.iter().map(|a| a.as_ref().unwrap()).collect();
        let names: Vec<&str> = list.names.iter().map(String::as_str).collect();
        let ours = save_params(&arrays, &names).unwrap();
        assert!(
            ours == bytes,
            "{}: saved bytes differ from MXNet's",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} MXNet-written files compared");
}

#[test]
fn invalid_files_are_rejected() {
    let dir = fixture_dir().join("invalid");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    for case in manifest.as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let err = load_params(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{file}: loaded, MXNet rejects it"));
        let msg = err.to_string();
        assert!(!msg.is_empty(), "{file}: empty error message");
    }
}

#[test]
fn errors_name_the_record() {
    let a = Tensor::from_f32(&[2], &[1.0, 2.0]).unwrap();
    let mut bytes = save_params(&[&a, &a], &["arg:x", "arg:y"]).unwrap();
    // Second record's dtype flag: header 24 + first record 4+4+4+8+4+4+4+8 = 40.
    let flag_at = 24 + 40 + 4 + 4 + 4 + 8 + 8;
    bytes[flag_at] = 9;
    let msg = load_params(&bytes).unwrap_err().to_string();
    assert!(msg.contains("record 1"), "{msg}");
    assert!(msg.contains("dtype flag 9"), "{msg}");
}

#[test]
fn huge_claimed_sizes_fail_before_allocating() {
    let a = Tensor::from_f32(&[2], &[1.0, 2.0]).unwrap();
    let good = save_params(&[&a], &["arg:x"]).unwrap();
    // Array count of 2^60.
    let mut bytes = good.clone();
    bytes[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(load_params(&bytes).is_err());
    // One dimension of 2^62 elements.
    let mut bytes = good.clone();
    bytes[36..44].copy_from_slice(&(1i64 << 62).to_le_bytes());
    assert!(load_params(&bytes).is_err());
    // Name length of 2^63.
    let mut bytes = good;
    let name_len_at = bytes.len() - 5 - 8;
    bytes[name_len_at..name_len_at + 8].copy_from_slice(&(1u64 << 63).to_le_bytes());
    assert!(load_params(&bytes).is_err());
}

#[test]
fn truncation_and_corruption_never_panic() {
    for (path, manifest) in manifests() {
        let bytes = std::fs::read(&path).unwrap();
        if manifest["mxnet_load"] != "ok" || load_params(&bytes).is_err() {
            continue;
        }
        for cut in 0..bytes.len() {
            assert!(
                load_params(&bytes[..cut]).is_err(),
                "{}: prefix of {cut} bytes loaded",
                path.display()
            );
        }
        let mut extended = bytes.clone();
        extended.push(0);
        assert!(
            load_params(&extended).is_err(),
            "{}: trailing byte accepted",
            path.display()
        );
        let step = (bytes.len() / 200).max(1);
        for at in (0..bytes.len()).step_by(step) {
            for value in [0x00u8, 0xff, 0x80, 0x7f] {
                let mut corrupt = bytes.clone();
                corrupt[at] = value;
                let _ = load_params(&corrupt);
            }
        }
    }
}
