//! The demonstration examples run as tests: `examples/box_office.rs` and `examples/door.rs`
//! assert what they show, so each must exit 0 and print its closing line.

use std::path::Path;
use std::process::Command;

/// `target/<profile>/examples/NAME`, built beside the test binaries by `cargo test`; built
/// here (with this test's profile) when missing.
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
    let bin = profile.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", name, "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        if profile.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("run cargo").success(), "could not build the {name} example");
    }
    bin
}

fn run(name: &str) -> String {
    let out = Command::new(example(name)).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name} exited {}:\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn the_box_office_example_runs_and_asserts_what_it_shows() {
    let out = run("box_office");
    for line in [
        "crew comp confirmed at once",
        "limit of 6 per customer",
        "concessions sold out",
        "told the price is now 50.00",
        "both confirmed",
        "nothing is held on either night",
        "takings: Friday 575.00 EUR, Saturday 90.00 EUR",
        "box office: ok",
    ] {
        assert!(out.contains(line), "box_office did not print {line:?}:\n{out}");
    }
}

#[test]
fn the_door_example_runs_and_asserts_what_it_shows() {
    let out = run("door");
    for line in [
        "ADMIT",
        "ALREADY IN",
        "INVALID",
        "CANCELLED",
        "cat offered 1 place",
        "sold out (the place is cat's",
        "door: ok",
    ] {
        assert!(out.contains(line), "door did not print {line:?}:\n{out}");
    }
}
