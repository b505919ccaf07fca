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

/// Every ``[`name`](../src/…)`` link of docs/ARCHITECTURE.md names a function or type that still
/// exists in that file: a renamed or moved function fails here, so the tour cannot go stale.
#[test]
fn the_architecture_tour_names_functions_that_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tour = std::fs::read_to_string(format!("{root}/docs/ARCHITECTURE.md")).unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    for (i, _) in tour.match_indices("[`") {
        let rest = &tour[i + 2..];
        let Some((name, after)) = rest.split_once("`](../") else {
            continue;
        };
        let Some((path, _)) = after.split_once(')') else {
            continue;
        };
        if !path.starts_with("src/") || !path.ends_with(".rs") {
            continue;
        }
        let source = std::fs::read_to_string(format!("{root}/{path}"))
            .unwrap_or_else(|e| panic!("docs/ARCHITECTURE.md links {path}: {e}"));
        let defines = ["fn", "struct", "enum", "trait"].iter().any(|kind| {
            source.contains(&format!("{kind} {name}("))
                || source.contains(&format!("{kind} {name} "))
                || source.contains(&format!("{kind} {name}<"))
        });
        if !defines {
            missing.push(format!("{name} in {path}"));
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} links checked");
    assert!(
        missing.is_empty(),
        "the tour names what no longer exists: {missing:?}"
    );
}

#[test]
fn the_readme_layout_names_every_file_of_src() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(format!("{root}/src"))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !readme.contains(&format!("`{f}`")))
        .collect();
    assert!(files.len() > 20, "{files:?}");
    assert!(
        missing.is_empty(),
        "README's Layout does not name: {missing:?}"
    );
}
