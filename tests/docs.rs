//! The README's promises match the code: every setting is documented with its real default.

use std::process::Command;

#[test]
fn readme_config_table_matches_help() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wsdrain"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0;
    for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(flag), Some(env)) = (words.first(), words.get(1)) else {
            continue;
        };
        if !env.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            continue; // --echo, --help
        }
        let default = line
            .split("[default: ")
            .nth(1)
            .unwrap()
            .trim_end_matches(']');
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{env}` ")))
            .unwrap_or_else(|| panic!("README has no row for {env}"));
        assert!(
            row.contains(&format!("`{flag}`")),
            "README row for {env} lacks {flag}: {row}"
        );
        if !matches!(default, "unset" | "auto") && !default.is_empty() {
            assert!(
                row.contains(&format!("`{default}`")),
                "README default for {env} is not {default}: {row}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} settings found in --help");
}

#[test]
fn cargo_run_starts_the_server() {
    // The package has two binaries (the server and the rollout harness); `cargo run --release`
    // must pick the server without a --bin flag.
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(
        manifest
            .lines()
            .any(|l| l.trim() == "default-run = \"wsdrain\""),
        "Cargo.toml lacks default-run"
    );
}

#[test]
fn readme_names_the_two_commands() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("\ncargo run --release\n"));
    assert!(readme.contains("\nbash tests/run.sh\n"));
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(
        ci.contains("bash tests/run.sh"),
        ".ci/run must run the README's test command"
    );
}
