//! Static files: `STATIC_DIR` is read into memory once at start and served from there.
//!
//! Why a cache and not reads per request: the loop must never block on disk, the directory is
//! small (a page and its scripts), and in the container it is read-only, so it cannot change
//! under us. Every response shares the file's bytes (`Arc`), so a thousand clients fetching the
//! page cost one copy. Each file's ETag is a hash of its content, so every pod of one image
//! gives the same ETag, whatever the file times in the image.
//!
//! Path safety is by construction: a request can only name a key of the map, and the map holds
//! only regular files that really live under the root (symlinks are resolved at load and
//! skipped when they point outside). Request paths are still checked and suspicious shapes
//! (`..`, encoded slashes, backslashes, NUL) answered 400, so probes for them are visible.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much of the static directory is loaded (`STATIC_MAX_FILE_BYTES`,
/// `STATIC_MAX_TOTAL_BYTES`): what is over is not served, and logged at start.
#[derive(Debug, Clone, Copy)]
pub struct StaticLimits {
    /// Files larger than this are not served.
    pub max_file_bytes: u64,
    /// The whole cache stops growing here.
    pub max_total_bytes: u64,
}

impl StaticLimits {
    /// The limits `config` sets.
    pub fn of(config: &crate::config::Config) -> StaticLimits {
        StaticLimits {
            max_file_bytes: config.static_max_file_bytes as u64,
            max_total_bytes: config.static_max_total_bytes as u64,
        }
    }
}
/// Directory nesting followed at load.
const MAX_DEPTH: usize = 16;

/// One cached file.
#[derive(Debug)]
pub struct StaticFile {
    /// The content.
    pub body: Arc<[u8]>,
    /// Its media type.
    pub content_type: &'static str,
    /// A strong validator: a hash of the content.
    pub etag: String,
    /// Modification time as an HTTP date.
    pub last_modified: String,
    modified: SystemTime,
}

impl StaticFile {
    /// Whether the client's cached copy is current (`If-None-Match` first, then
    /// `If-Modified-Since`, as RFC 9110 §13.2.2 orders them).
    pub fn not_modified(
        &self,
        if_none_match: Option<&str>,
        if_modified_since: Option<&str>,
    ) -> bool {
        if let Some(tags) = if_none_match {
            return tags
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag);
        }
        if let Some(since) = if_modified_since.and_then(|s| httpdate::parse_http_date(s).ok()) {
            return secs(self.modified) <= secs(since);
        }
        false
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a request path resolves to.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A file.
    File(&'a StaticFile),
    /// A directory named without its trailing slash: redirect so relative links work. Holds
    /// the directory's normalised key, from which [`add_slash_location`] builds the target.
    AddSlash(String),
    /// Nothing here.
    NotFound,
}

/// The cache of `STATIC_DIR`.
#[derive(Debug, Default)]
pub struct StaticFiles {
    files: HashMap<String, StaticFile>,
    dirs: HashSet<String>,
    total_bytes: u64,
}

impl StaticFiles {
    /// Reads every regular file under `root` that is within `limits`.
    pub fn load(root: &Path, limits: StaticLimits) -> io::Result<StaticFiles> {
        let root = root.canonicalize()?;
        let mut files = StaticFiles::default();
        let mut visited = HashSet::new();
        files.load_dir(limits, &root, &root, String::new(), 0, &mut visited)?;
        Ok(files)
    }

    fn load_dir(
        &mut self,
        limits: StaticLimits,
        root: &Path,
        dir: &Path,
        prefix: String,
        depth: usize,
        visited: &mut HashSet<PathBuf>,
    ) -> io::Result<()> {
        if depth > MAX_DEPTH || !visited.insert(dir.to_path_buf()) {
            return Ok(());
        }
        let mut entries: Vec<_> = fs::read_dir(dir)?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                log::warn!("static: skipping {:?}: name is not UTF-8", entry.path());
                continue;
            };
            if name.starts_with('.') {
                continue; // hidden files (.git, .env, editor swap files) are never served
            }
            let Ok(real) = entry.path().canonicalize() else {
                log::warn!("static: skipping {:?}: broken link", entry.path());
                continue;
            };
            if !real.starts_with(root) {
                log::warn!(
                    "static: skipping {:?}: points outside {:?}",
                    entry.path(),
                    root
                );
                continue;
            }
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = fs::metadata(&real)?;
            if meta.is_dir() {
                self.dirs.insert(key.clone());
                self.load_dir(limits, root, &real, key, depth + 1, visited)?;
            } else if meta.is_file() {
                self.load_file(limits, key, &real, &meta)?;
            }
        }
        Ok(())
    }

    fn load_file(
        &mut self,
        limits: StaticLimits,
        key: String,
        path: &Path,
        meta: &fs::Metadata,
    ) -> io::Result<()> {
        if meta.len() > limits.max_file_bytes {
            log::warn!(
                "static: not serving {key}: {} bytes is over STATIC_MAX_FILE_BYTES ({})",
                meta.len(),
                limits.max_file_bytes
            );
            return Ok(());
        }
        if self.total_bytes + meta.len() > limits.max_total_bytes {
            log::warn!(
                "static: not serving {key}: the cache is full (STATIC_MAX_TOTAL_BYTES, {} bytes)",
                limits.max_total_bytes
            );
            return Ok(());
        }
        let body = fs::read(path)?;
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        self.total_bytes += body.len() as u64;
        let file = StaticFile {
            etag: format!("\"{:x}-{:016x}\"", body.len(), fnv1a(&body)),
            content_type: content_type(&key),
            last_modified: httpdate::fmt_http_date(modified),
            body: body.into(),
            modified,
        };
        self.files.insert(key, file);
        Ok(())
    }

    /// Number of files cached.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is cached.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Bytes cached.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Resolves a request path (percent-encoded, starting with `/`).
    pub fn lookup(&self, path: &str) -> Result<Lookup<'_>, &'static str> {
        let (key, dir) = normalize(path)?;
        let found = if key.is_empty() {
            self.files.get("index.html")
        } else if dir {
            self.files.get(&format!("{key}/index.html"))
        } else if let Some(file) = self.files.get(&key) {
            Some(file)
        } else if self.dirs.contains(&key) {
            return Ok(Lookup::AddSlash(key));
        } else {
            None
        };
        Ok(found.map_or(Lookup::NotFound, Lookup::File))
    }
}

/// Turns a request path into a cache key (segments joined by `/`, no leading slash) and whether
/// it named a directory (trailing slash). Refuses anything that tries to step out or hide a
/// separator.
pub fn normalize(path: &str) -> Result<(String, bool), &'static str> {
    let rest = path.strip_prefix('/').ok_or("path must start with /")?;
    let mut decoded = Vec::with_capacity(rest.len());
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("bad percent-encoding")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "bad percent-encoding")?;
            let value = u8::from_str_radix(hex, 16).map_err(|_| "bad percent-encoding")?;
            if value == b'/' {
                return Err("encoded slash in path");
            }
            decoded.push(value);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    if decoded.contains(&b'\\') {
        return Err("backslash in path");
    }
    if decoded.contains(&0) {
        return Err("NUL in path");
    }
    let text = String::from_utf8(decoded).map_err(|_| "path is not UTF-8")?;
    let dir = text.is_empty() || text.ends_with('/');
    let mut segments = Vec::new();
    for segment in text.split('/') {
        match segment {
            "" => {}
            "." | ".." => return Err("dot segment in path"),
            s if s.chars().any(char::is_control) => return Err("control character in path"),
            s => segments.push(s),
        }
    }
    Ok((segments.join("/"), dir))
}

/// The `Location` that adds a directory's slash: `/` + its normalised `key` (percent-encoded
/// again) + `/`, then the request's query. Never the request's own path: `//host` or `/\host`
/// there would send a browser to another site. Whatever `key` holds, the result never starts
/// with `//` or `/\` (slashes around it are dropped, a `\` is encoded).
pub fn add_slash_location(key: &str, query: Option<&str>) -> String {
    let key = key.trim_matches('/');
    let mut location = String::with_capacity(key.len() + 2);
    location.push('/');
    for &b in key.as_bytes() {
        // RFC 3986 pchar (unreserved, sub-delims, `:`, `@`) and the `/` between segments.
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            location.push(char::from(b));
        } else {
            let _ = write!(location, "%{b:02X}");
        }
    }
    if !key.is_empty() {
        location.push('/');
    }
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    location
}

/// Media type by file extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("webp") => "image/webp",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// 64-bit FNV-1a: a fast, stable content hash for ETags (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let ok: &[(&str, &str, bool)] = &[
            ("/", "", true),
            ("/index.html", "index.html", false),
            ("/a/b.js", "a/b.js", false),
            ("/a/", "a", true),
            ("//a//b", "a/b", false),
            ("/a%20b.txt", "a b.txt", false),
            ("/%61pp.js", "app.js", false),
            ("/caf%C3%A9", "café", false),
            ("/..a", "..a", false),
        ];
        for (path, key, dir) in ok {
            assert_eq!(normalize(path), Ok((key.to_string(), *dir)), "{path}");
        }
        let bad = [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/a/..",
            "/./a",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a%2fb",
            "/..%2f..%2fetc",
            "/a\\..\\b",
            "/%5c..%5cb",
            "/a%00.html",
            "/%zz",
            "/%2",
            "/%ff",
            "/a%0ab",
            "etc/passwd",
        ];
        for path in bad {
            assert!(normalize(path).is_err(), "{path} accepted");
        }
    }

    #[test]
    fn add_slash_locations_stay_on_the_site() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("sub", None, "/sub/"),
            ("sub", Some("x=1"), "/sub/?x=1"),
            ("a/b", Some(""), "/a/b/?"),
            ("space dir", None, "/space%20dir/"),
            ("100%", None, "/100%25/"),
            ("q?#x", None, "/q%3F%23x/"),
            ("café", None, "/caf%C3%A9/"),
            ("x:y@z", None, "/x:y@z/"),
            // Not keys normalize() gives, but still never off the site.
            ("", None, "/"),
            ("//evil.example", Some("x"), "/evil.example/?x"),
            ("\\evil.example", None, "/%5Cevil.example/"),
        ];
        for (key, query, location) in cases {
            assert_eq!(add_slash_location(key, *query), *location, "{key}");
        }
        // From whatever a request names, the redirect names the same directory, on this site.
        for path in [
            "/sub",
            "//sub",
            "///sub",
            "//sub//",
            "/%2F/sub",
            "/\\sub",
            "/%5Csub",
            "//%73ub",
            "/space%20dir",
            "//100%25",
            "//a//b",
            "//caf%C3%A9",
            "//%3F%23",
            "/.%2e/x",
        ] {
            let Ok((key, _)) = normalize(path) else {
                continue;
            };
            let location = add_slash_location(&key, None);
            assert!(
                !location.starts_with("//") && !location.starts_with("/\\"),
                "{path} -> {location}"
            );
            assert_eq!(
                normalize(&location),
                Ok((key, true)),
                "{path} -> {location}"
            );
        }
    }

    #[test]
    fn conditional_requests() {
        let file = StaticFile {
            body: Arc::from(&b"x"[..]),
            content_type: "text/plain",
            etag: "\"1-abc\"".into(),
            last_modified: httpdate::fmt_http_date(
                UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
            ),
            modified: UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
        };
        assert!(file.not_modified(Some("\"1-abc\""), None));
        assert!(file.not_modified(Some("\"x\", W/\"1-abc\""), None));
        assert!(file.not_modified(Some("*"), None));
        assert!(!file.not_modified(Some("\"other\""), Some(&file.last_modified)));
        assert!(file.not_modified(None, Some(&file.last_modified)));
        assert!(!file.not_modified(None, Some("Thu, 01 Jan 1970 00:00:00 GMT")));
        assert!(!file.not_modified(None, Some("not a date")));
        assert!(!file.not_modified(None, None));
    }

    #[test]
    fn content_types() {
        for (name, expected) in [
            ("a/index.HTML", "text/html; charset=utf-8"),
            ("old.htm", "text/html; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("m.mjs", "text/javascript; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("logo.svg", "image/svg+xml"),
            ("shot.PNG", "image/png"),
            ("favicon.ico", "image/x-icon"),
            ("manifest.json", "application/json"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("photo.webp", "image/webp"),
            ("f.woff2", "font/woff2"),
            ("archive.tar.gz", "application/octet-stream"),
            ("noext", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name), expected, "{name}");
        }
    }
}
