//! The architecture, checked: `src/` is layered (`docs/ARCHITECTURE.md`, "Layout"), and a
//! module uses only the layers below it. A `use crate::…` (or any `crate::…` path in code) that
//! points up or sideways fails this test, naming the file and the line; so does a chain of
//! `super::` that climbs out of its own folder to another.

use std::path::{Path, PathBuf};

/// Every folder of `src/` and its layer, lowest first.
const LAYERS: &[(&str, u8)] = &[
    ("base", 0),
    ("config", 0),
    ("net", 1),
    ("protocol", 2),
    ("app", 3),
    ("connection", 4),
    ("server", 5),
];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::x` modules a line of code names (comments are not code).
fn crate_paths(line: &str) -> Vec<&str> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .map(|(i, m)| {
            let rest = &code[i + m.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// The top-level modules a line of code reaches by climbing with `super::` past the crate's
/// root, from a module `depth` levels below it (`app::service::tests` is 3): a chain shorter
/// than that stays inside its own folder.
fn modules_climbed_to(line: &str, depth: usize) -> Vec<&str> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        let starts_word = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        let mut after = &rest[i..];
        let mut climbs = 0;
        while let Some(next) = after.strip_prefix("super::") {
            climbs += 1;
            after = next;
        }
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if starts_word && climbs >= depth && end > 0 {
            found.push(&after[..end]);
        }
        rest = after;
    }
    found
}

/// How many levels below the crate's root the module of `rel` (a path under `src/`) is.
fn module_depth(rel: &Path) -> usize {
    let parts = rel.iter().count();
    if rel.file_name().is_some_and(|f| f == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let Some(own) = rel.iter().next().and_then(|c| c.to_str()) else {
            continue;
        };
        let Some(own_layer) = layer_of(own) else {
            assert!(
                matches!(own, "main.rs" | "lib.rs" | "bin"),
                "{own}: a folder of src/ that is not in the layer table"
            );
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read");
        let mut depth = module_depth(rel);
        for (n, line) in text.lines().enumerate() {
            // An inline module (`mod tests {`, at the end of a file) is one level deeper.
            let trimmed = line.trim_start();
            if (trimmed.starts_with("mod ") || trimmed.starts_with("pub mod "))
                && trimmed.ends_with('{')
            {
                depth += 1;
            }
            let climbed = modules_climbed_to(line, depth);
            for used in crate_paths(line).into_iter().chain(climbed) {
                checked += 1;
                let ok = used == own || layer_of(used).is_some_and(|l| l < own_layer);
                if !ok {
                    violations.push(format!(
                        "src/{}:{}: {own} (layer {own_layer}) uses crate::{used}",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} crate paths found: is src/ laid out as expected?"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn each_layer_says_what_it_may_use() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (module, layer) in LAYERS {
        let text = std::fs::read_to_string(src.join(module).join("mod.rs")).expect("mod.rs");
        let doc: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            doc.contains(&format!("Layer {layer}")),
            "src/{module}/mod.rs: its //! must name its layer (\"Layer {layer}\") and what it \
             may use: {doc:?}"
        );
    }
}

#[test]
fn the_checker_sees_a_path_that_points_up() {
    assert_eq!(
        crate_paths("use crate::server::Server; // crate::app"),
        vec!["server"]
    );
    assert_eq!(
        crate_paths("    let x = crate::app::a(crate::net::b);"),
        vec!["app", "net"]
    );
    // From `app::service::tests` (3 levels down): two climbs stay in `app`, three leave it.
    assert_eq!(
        modules_climbed_to(
            "use super::super::Service; use super::super::super::server::S;",
            3
        ),
        vec!["server"]
    );
    assert_eq!(module_depth(Path::new("app/service/tests.rs")), 3);
    assert_eq!(module_depth(Path::new("app/mod.rs")), 1);
}
