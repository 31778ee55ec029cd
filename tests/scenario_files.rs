//! The scenario files in `tests/scenarios/` (the scenario runner's format: `NAME.jsonl`
//! commands, `NAME.expected.jsonl` answers), fed to the scenario runner
//! (`examples/scenario.rs`) and compared as `../shared/conformance/check.py` does: every key
//! of an expected line must be in the answer with an equal value (recursively), lists have
//! the same length, `amount` and `price` compare as decimals. On MemoryStore, and with
//! `SEATHOLD_PG_URL` (feature `postgres`) on PostgreSQL (`--store URL`).
//!
//! The same files run by hand: `python3 ../shared/conformance/check.py --runner
//! target/debug/examples/scenario tests/scenarios`.

#[cfg(feature = "postgres")]
use crate::postgres_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use seathold::contract::Amount;
use serde_json::Value;

/// `target/<profile>/examples/scenario`, built beside the test binaries by `cargo test`; built
/// here (with this test's profile and features) when missing.
fn runner() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
    let bin = profile.join("examples").join(format!("scenario{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", "scenario", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        if profile.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        if cfg!(feature = "postgres") {
            cmd.args(["--features", "postgres"]);
        }
        assert!(cmd.status().expect("run cargo").success(), "could not build the scenario runner");
    }
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
        })
        .collect();
    files.sort();
    files
}

const DECIMAL_KEYS: [&str; 2] = ["amount", "price"];

/// `None` if `expected` is a subset of `actual`, else where and why not.
fn subset(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    match expected {
        Value::Object(e) => {
            let Value::Object(a) = actual else { return Some(format!("{path}: expected an object, got {actual}")) };
            e.iter().find_map(|(k, v)| match a.get(k) {
                None => Some(format!("{path}.{k}: missing")),
                Some(got) => subset(v, got, &format!("{path}.{k}")),
            })
        }
        Value::Array(e) => {
            let Value::Array(a) = actual else { return Some(format!("{path}: expected a list, got {actual}")) };
            if a.len() != e.len() {
                return Some(format!("{path}: expected a list of {}, got {actual}", e.len()));
            }
            e.iter().zip(a).enumerate().find_map(|(i, (e, a))| subset(e, a, &format!("{path}[{i}]")))
        }
        _ => {
            let key = path.rsplit('.').next().unwrap_or_default();
            if DECIMAL_KEYS.contains(&key) {
                if let (Some(e), Some(a)) = (expected.as_str(), actual.as_str()) {
                    if let (Ok(e), Ok(a)) = (Amount::parse(e), Amount::parse(a)) {
                        if e == a {
                            return None;
                        }
                    }
                }
            }
            (expected != actual).then(|| format!("{path}: expected {expected}, got {actual}"))
        }
    }
}

/// Run every scenario file through the runner with `args`; answer the problems found.
fn check_all(args: &[&str]) -> Vec<String> {
    let bin = runner();
    let mut problems = Vec::new();
    let files = scenario_files();
    assert!(files.len() >= 5, "scenario files are missing: {files:?}");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let inputs: Vec<String> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let expected_path = file.with_file_name(name.replace(".jsonl", ".expected.jsonl"));
        let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name} expected: {e}: {l}")))
            .collect();
        assert_eq!(inputs.len(), expected.len(), "{name}: one expected answer per command");
        let mut child = Command::new(&bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the scenario runner");
        let mut stdin = child.stdin.take().unwrap();
        let input = inputs.join("\n") + "\n";
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        if !out.status.success() {
            problems.push(format!(
                "{name}: the runner exited {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let answers: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
        for (i, exp) in expected.iter().enumerate() {
            let Some(answer) = answers.get(i) else {
                problems.push(format!("{name} line {}: no answer (input: {})", i + 1, inputs[i]));
                break;
            };
            let got: Value = match serde_json::from_str(answer) {
                Ok(v) => v,
                Err(_) => {
                    problems.push(format!("{name} line {}: not JSON: {answer}", i + 1));
                    continue;
                }
            };
            if let Some(why) = subset(exp, &got, "$") {
                problems.push(format!("{name} line {} ({}): {why}", i + 1, inputs[i]));
            }
        }
    }
    problems
}

#[test]
fn the_subset_match_is_check_py_s() {
    let a: Value = serde_json::json!({"status": "cancelled", "amount": "20.00", "extra": [1, 2], "events": [{"x": 1}]});
    assert_eq!(subset(&serde_json::json!({"amount": "20.0"}), &a, "$"), None);
    assert_eq!(subset(&serde_json::json!({"events": [{}]}), &a, "$"), None);
    assert!(subset(&serde_json::json!({"events": []}), &a, "$").is_some());
    assert!(subset(&serde_json::json!({"status": "noop"}), &a, "$").is_some());
    assert!(subset(&serde_json::json!({"missing": 1}), &a, "$").is_some());
    assert!(subset(&serde_json::json!({"extra": [1]}), &a, "$").is_some());
}

#[test]
fn scenario_files_pass_on_memory() {
    let problems = check_all(&[]);
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[cfg(feature = "postgres")]
#[test]
fn scenario_files_pass_on_postgres() {
    let Some(url) = postgres_support::pg_url("scenario_files_pass_on_postgres") else { return };
    let problems = check_all(&["--store", &url]);
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
