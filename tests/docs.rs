//! The documentation matches the code: the README (a front page) and the pages of `docs/` name
//! only links, files and functions that exist, and describe every setting (with its real
//! default), every metric and every endpoint the server has. A renamed function, a moved file or
//! a new setting without its line in the docs fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use wsdrain::app::metrics::{Gauges, Metrics};
use wsdrain::app::routes::named_endpoints;
use wsdrain::base::memory::MemoryReading;
use wsdrain::net::Listener;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The README and every page of `docs/`: (path from the root, text).
fn pages() -> Vec<(String, String)> {
    let mut pages = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(format!("{ROOT}/docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            p.strip_prefix(ROOT)
                .expect("under root")
                .display()
                .to_string()
        })
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(format!("{ROOT}/{p}")).expect("readable");
            (p, text)
        })
        .collect()
}

fn page(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_operations_guide_lists_every_setting_with_its_default() {
    let guide = page("docs/operations.md");
    let out = Command::new(env!("CARGO_BIN_EXE_wsdrain"))
        .arg("--help")
        .output()
        .expect("wsdrain --help");
    let help = String::from_utf8(out.stdout).expect("UTF-8");
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
            .expect("a default")
            .trim_end_matches(']');
        let row = guide
            .lines()
            .find(|l| l.starts_with(&format!("| `{env}` ")))
            .unwrap_or_else(|| panic!("docs/operations.md has no row for {env}"));
        assert!(
            row.contains(&format!("`{flag}`")),
            "the row for {env} lacks {flag}: {row}"
        );
        if !matches!(default, "unset" | "auto") && !default.is_empty() {
            assert!(
                row.contains(&format!("`{default}`")),
                "the default of {env} is not {default}: {row}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} settings found in --help");
}

#[test]
fn the_operations_guide_describes_every_metric() {
    // Every family the server can render: with every optional reading present.
    let text = Metrics::default().render(&Gauges {
        memory: MemoryReading {
            resident_bytes: Some(1),
            cgroup_bytes: Some(1),
            cgroup_limit_bytes: Some(1),
        },
        ..Gauges::default()
    });
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.len() >= 30, "{families:?}");
    let guide = page("docs/operations.md");
    let missing: Vec<_> = families
        .iter()
        .filter(|name| {
            !guide.contains(&format!("`{name}`")) && !guide.contains(&format!("`{name}{{"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md does not describe: {missing:?}"
    );
}

#[test]
fn the_operations_guide_describes_every_endpoint() {
    let guide = page("docs/operations.md");
    let table: Vec<&str> = guide
        .lines()
        .skip_while(|l| *l != "## Endpoints")
        .take_while(|l| !l.starts_with("### "))
        .filter(|l| l.starts_with('|'))
        .collect();
    let mut checked = 0;
    for (path, port) in named_endpoints() {
        let port = match port {
            None => "both",
            Some(Listener::Public) => "public",
            Some(Listener::Admin) => "admin",
        };
        assert!(
            table
                .iter()
                .any(|row| row.starts_with(&format!("| {port}"))
                    && row.contains(&format!("`{path}`"))),
            "docs/operations.md's endpoint table has no {port} row for {path}"
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
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
    let readme = page("README.md");
    assert!(readme.contains("\ncargo run --release\n"));
    assert!(readme.contains("\nbash tests/run.sh\n"));
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(
        ci.contains("bash tests/run.sh"),
        ".ci/run must run the README's test command"
    );
}

/// GitHub's anchor for a heading: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown page's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

/// Every markdown link `](target)` of a page, with the line it is on.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push((n + 1, rest[..end].to_string()));
            }
        }
    }
    out
}

#[test]
fn every_link_of_the_docs_leads_somewhere() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for (path, text) in pages() {
        let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
        for (line, target) in links(&text) {
            // The web, and the pattern a page writes out as an example (`…`).
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.contains('…')
            {
                continue;
            }
            let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let resolved: PathBuf = if file.is_empty() {
                PathBuf::from(&path)
            } else {
                dir.join(file)
            };
            let full = Path::new(ROOT).join(&resolved);
            checked += 1;
            if !full.exists() {
                missing.push(format!(
                    "{path}:{line}: {target} (no {})",
                    resolved.display()
                ));
                continue;
            }
            if !fragment.is_empty() && full.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&full).expect("readable");
                if !anchors(&text).contains(fragment) {
                    missing.push(format!("{path}:{line}: {target} (no heading #{fragment})"));
                }
            }
        }
    }
    assert!(checked >= 40, "only {checked} links checked");
    assert!(
        missing.is_empty(),
        "links that lead nowhere:\n{}",
        missing.join("\n")
    );
}

/// A path of this repository named in a page (`src/…`, `deploy/…`, …), as a reader would open it.
fn named_paths(text: &str) -> Vec<String> {
    const TOP: [&str; 9] = [
        "src/", "tools/", "tests/", "deploy/", "benches/", "static/", "docs/", "fuzz/", ".ci/",
    ];
    let mut out = Vec::new();
    for piece in text.split('`').skip(1).step_by(2) {
        let candidate = piece.split_whitespace().next().unwrap_or("");
        let candidate = candidate.trim_end_matches([',', '.', ':', ')']);
        if !TOP.iter().any(|t| candidate.starts_with(t))
            || candidate.contains(['*', '…', '<', '{', '$', '='])
            || candidate.starts_with("tests/artifacts/")
        {
            continue;
        }
        out.push(candidate.trim_end_matches('/').to_string());
    }
    out
}

#[test]
fn every_file_the_docs_name_exists() {
    let mut missing = BTreeSet::new();
    let mut checked = 0;
    for (path, text) in pages() {
        for named in named_paths(&text) {
            checked += 1;
            if !Path::new(ROOT).join(&named).exists() {
                missing.insert(format!("{path}: `{named}`"));
            }
        }
    }
    assert!(checked >= 100, "only {checked} paths checked");
    assert!(
        missing.is_empty(),
        "files the docs name that do not exist: {missing:#?}"
    );
}

/// Every ``[`name`](…/src/….rs)`` link of the docs names a function or type that still exists
/// in that file: a renamed or moved function fails here, so the tour cannot go stale.
#[test]
fn every_function_the_docs_link_exists() {
    let mut checked = 0;
    let mut missing = Vec::new();
    for (path, text) in pages() {
        let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
        for (i, _) in text.match_indices("[`") {
            let rest = &text[i + 2..];
            let Some((name, after)) = rest.split_once("`](") else {
                continue;
            };
            let Some((target, _)) = after.split_once(')') else {
                continue;
            };
            if !target.ends_with(".rs") || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let source = std::fs::read_to_string(Path::new(ROOT).join(dir).join(target))
                .unwrap_or_else(|e| panic!("{path} links {target}: {e}"));
            let defines = ["fn", "struct", "enum", "trait", "type"]
                .iter()
                .any(|kind| {
                    source.contains(&format!("{kind} {name}("))
                        || source.contains(&format!("{kind} {name} "))
                        || source.contains(&format!("{kind} {name}<"))
                        || source.contains(&format!("{kind} {name};"))
                });
            if !defines {
                missing.push(format!("{path}: {name} in {target}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} links checked");
    assert!(
        missing.is_empty(),
        "the docs name what no longer exists: {missing:?}"
    );
}

#[test]
fn the_architecture_page_names_every_file_of_src() {
    let tour = page("docs/ARCHITECTURE.md");
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::from(format!("{ROOT}/src"))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).expect("src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(
                    path.strip_prefix(ROOT)
                        .expect("under root")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !tour.contains(&format!("`{f}`")))
        .collect();
    assert!(files.len() > 20, "{files:?}");
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md's Layout does not name: {missing:?}"
    );
}
