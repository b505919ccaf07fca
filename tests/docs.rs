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
    // `cargo run --release` must start the server with neither a --bin flag nor `default-run`:
    // the root package has one binary, the server. The tools (rollout harness, load generator,
    // peer) are workspace members of their own, under tools/ and benches/.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    // The sections of Cargo.toml: (header, its lines).
    let mut sections: Vec<(&str, Vec<&str>)> = vec![("", Vec::new())];
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            sections.push((line, Vec::new()));
        } else if let Some((_, lines)) = sections.last_mut() {
            lines.push(line);
        }
    }
    let value = |lines: &[&str], key: &str| {
        lines.iter().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    let package = &sections.iter().find(|(h, _)| *h == "[package]").unwrap().1;
    assert_eq!(value(package, "name").as_deref(), Some("wsdrain"));
    // The binaries cargo finds: src/main.rs and src/bin/* (unless autobins = false), and
    // every [[bin]] section.
    let mut binaries = std::collections::BTreeSet::new();
    if value(package, "autobins").as_deref() != Some("false") {
        if root.join("src/main.rs").exists() {
            binaries.insert("wsdrain".to_string());
        }
        if let Ok(entries) = std::fs::read_dir(root.join("src/bin")) {
            for entry in entries {
                let path = entry.unwrap().path();
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                binaries.insert(stem);
            }
        }
    }
    for (_, lines) in sections.iter().filter(|(h, _)| *h == "[[bin]]") {
        binaries.insert(value(lines, "name").unwrap_or_else(|| "unnamed [[bin]]".into()));
    }
    assert_eq!(
        binaries.into_iter().collect::<Vec<_>>(),
        ["wsdrain"],
        "the server package must have exactly one binary, so that `cargo run --release` \
         starts it; tools belong in their own workspace members"
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
