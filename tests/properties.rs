//! Properties of the parsing paths, checked on generated input with proptest: they never panic,
//! the way bytes are split into reads never changes the result, path normalisation never leaves
//! the static root, a directory's redirect never leaves the site, and reversing twice gives the
//! original text.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use wsdrain::app::context::Context;
use wsdrain::app::routes;
use wsdrain::app::static_files::{StaticFiles, StaticLimits, normalize};
use wsdrain::base::outbuf::OutQueue;
use wsdrain::base::timers::Rng;
use wsdrain::config::{Command, Config};
use wsdrain::connection::{Connection, NextIo};
use wsdrain::net::Listener;
use wsdrain::protocol::http::{self, Parsed};

fn context() -> Context {
    context_serving(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/static")))
}

/// A static directory with subdirectories whose names need percent-encoding in a URL.
fn dirs_fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("static-dirs");
        for sub in ["sub", "space dir", "100%", "a/b", "café", "q?#x", "x:y@z"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            std::fs::write(dir.join(sub).join("index.html"), "i\n").unwrap();
        }
        dir
    })
}

/// A context serving `dir`.
fn context_serving(dir: &Path) -> Context {
    let dir = dir.display().to_string();
    let Ok(Command::Run(config)) = Config::parse(Vec::<String>::new(), |name| {
        (name == "STATIC_DIR").then(|| dir.clone())
    }) else {
        panic!("default config")
    };
    let files = StaticFiles::load(Path::new(&dir), StaticLimits::of(&config)).unwrap();
    // A fixed wall clock: the Date header must not change between two runs being compared.
    Context::new(*config, files, "prop", Rng::seeded(1), || {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
    })
}

/// Request targets that name a directory without its slash, in the shapes a browser or an
/// attacker might send: extra leading slashes (`//host` is another site to a browser),
/// backslashes, encoded separators, and names that need percent-encoding.
fn directory_targets() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "/", "//", "///", "////", "/\\", "/\\/", "//\\", "/%2F", "/%5C", "/%5c/", "/./", "/%2e/",
    ]);
    let name = prop::sample::select(vec![
        "sub",
        "%73ub",
        "space%20dir",
        "100%25",
        "a/b",
        "a//b",
        "caf%C3%A9",
        "q%3F%23x",
        "x:y@z",
        "x%3Ay%40z",
        "sub/index.html",
        "nope",
    ]);
    let tail = prop::sample::select(vec!["", "", "/", "//"]);
    let query = prop::sample::select(vec!["", "", "?x=1", "?//evil.example", "?a=%2F"]);
    prop_oneof![
        (prefix, name, tail, query).prop_map(|(p, n, t, q)| format!("{p}{n}{t}{q}")),
        "/[a-z%0-9./\\\\?]{0,20}",
    ]
}

/// What parsing a buffer decided, in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Partial,
    Complete {
        len: usize,
        method: String,
        path: String,
        keep_alive: bool,
    },
    Invalid(u16),
}

fn parse_once(buf: &[u8]) -> Outcome {
    let mut storage = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
    match http::parse(buf, &mut storage, 8192) {
        Parsed::Partial => Outcome::Partial,
        Parsed::Complete(head, len) => Outcome::Complete {
            len,
            method: head.method_name.to_string(),
            path: head.path.to_string(),
            keep_alive: head.keep_alive,
        },
        Parsed::Invalid(e) => Outcome::Invalid(e.status),
    }
}

/// Parses as the connection does: after every read, on everything buffered so far.
fn parse_in_reads(bytes: &[u8], cuts: &[usize]) -> Outcome {
    let mut buffered = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    for point in points {
        buffered.extend_from_slice(&bytes[last..point]);
        last = point;
        let outcome = parse_once(&buffered);
        if outcome != Outcome::Partial {
            return outcome;
        }
    }
    Outcome::Partial
}

/// Requests that are mostly well-formed, with random damage: the interesting region.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("GET".to_string()),
        Just("HEAD".to_string()),
        Just("POST".to_string()),
        Just("PRI".to_string()),
        Just("BREW".to_string()),
        "[A-Z]{1,8}",
    ];
    let path = prop_oneof![
        Just("/".to_string()),
        Just("/healthz".to_string()),
        Just("/ws".to_string()),
        "/[a-z%0-9./\\\\]{0,20}",
    ];
    let version = prop_oneof![
        Just("HTTP/1.1"),
        Just("HTTP/1.0"),
        Just("HTTP/2.0"),
        Just("HTTP/1.1")
    ];
    let header = prop_oneof![
        Just("Host: a".to_string()),
        Just("Connection: close".to_string()),
        Just("Content-Length: 0".to_string()),
        Just("Content-Length: 7".to_string()),
        Just("Transfer-Encoding: chunked".to_string()),
        Just("Upgrade: websocket".to_string()),
        "[A-Za-z-]{1,12}: [ -~]{0,20}",
    ];
    let eol = prop_oneof![Just("\r\n"), Just("\r\n"), Just("\r\n"), Just("\n")];
    (
        method,
        path,
        version,
        proptest::collection::vec((header, eol.clone()), 0..6),
        eol,
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(m, p, v, headers, end, noise)| {
            let mut text = format!("{m} {p} {v}\r\n");
            for (h, e) in headers {
                text.push_str(&h);
                text.push_str(e);
            }
            text.push_str(end);
            let mut bytes = text.into_bytes();
            bytes.extend(noise);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn http_parsing_does_not_depend_on_how_bytes_are_split(
        bytes in prop_oneof![request_bytes(), proptest::collection::vec(any::<u8>(), 0..300)],
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        prop_assert_eq!(parse_in_reads(&bytes, &cuts), parse_once(&bytes));
    }

    #[test]
    fn every_parsed_request_gets_an_answer_without_panicking(bytes in request_bytes()) {
        let mut ctx = context();
        let mut storage = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
        if let Parsed::Complete(head, _) = http::parse(&bytes, &mut storage, 8192) {
            for side in [Listener::Public, Listener::Admin] {
                let mut out = OutQueue::new();
                match routes::handle(&head, side, &mut ctx) {
                    routes::Action::Respond(r) | routes::Action::Upgrade(r) => r.write_to(&mut out, "D", false),
                    routes::Action::AwaitPreStop { .. } => {}
                }
                let mut bytes = Vec::new();
                out.write_to(&mut bytes).unwrap();
                prop_assert!(bytes.is_empty() || bytes.starts_with(b"HTTP/1.1 "));
            }
        }
    }

    #[test]
    fn a_directory_redirect_stays_on_the_site_and_names_the_directory(
        target in directory_targets(),
    ) {
        let mut ctx = context_serving(dirs_fixture());
        let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut storage = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
        let Parsed::Complete(head, _) = http::parse(request.as_bytes(), &mut storage, 8192) else {
            return Ok(());
        };
        let routes::Action::Respond(response) = routes::handle(&head, Listener::Public, &mut ctx) else {
            return Ok(());
        };
        // Any answer that sends the browser elsewhere, whatever its status, is held to this.
        let Some(location) = response
            .headers
            .lines()
            .find_map(|l| l.strip_prefix("Location: "))
        else {
            return Ok(());
        };
        prop_assert_eq!(response.status, 301, "{} -> {}", target, location);
        // `//x` and `/\x` are scheme-relative to a browser: another host.
        prop_assert!(location.starts_with('/'), "{target} -> {location}");
        prop_assert!(!location.starts_with("//") && !location.starts_with("/\\"), "{target} -> {location}");
        // It names the directory the request named, with its slash, and keeps the query.
        let (path, query) = match location.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (location, None),
        };
        let (key, _) = normalize(head.path).unwrap();
        prop_assert_eq!(normalize(path), Ok((key, true)), "{} -> {}", target, location);
        prop_assert_eq!(query, head.query);
        prop_assert!(response.headers.contains("Cache-Control: no-cache\r\n"));
    }

    #[test]
    fn normalised_paths_stay_inside_the_root(path in "/[a-zA-Z0-9%./\\\\_~-]{0,40}") {
        if let Ok((key, _)) = normalize(&path) {
            prop_assert!(!key.starts_with('/'));
            prop_assert!(!key.contains('\\') && !key.contains('\0'));
            for segment in key.split('/') {
                prop_assert!(segment != ".." && segment != "." && !segment.is_empty() || key.is_empty());
            }
        }
    }
}

/// A client frame (the test kit's codec), masked or not.
fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool, rsv: u8) -> Vec<u8> {
    let mask = masked.then_some([0x11, 0x22, 0x33, 0x44]);
    testkit::ws::encode(fin, opcode, payload, mask, rsv)
}

/// Feeds WebSocket input to an upgraded connection, reads cut at `cuts`; returns everything
/// the WebSocket wrote (after the 101) and how the connection ended, if it did.
fn run_session(bytes: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<NextIo>) {
    let mut input = UPGRADE.to_vec();
    input.extend_from_slice(bytes);
    let shifted: Vec<usize> = cuts
        .iter()
        .map(|c| UPGRADE.len() + c % (bytes.len() + 1))
        .collect();
    let (written, end) = run_connection(&input, &shifted);
    let head = written
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the 101 answer");
    assert!(written.starts_with(b"HTTP/1.1 101 "));
    // The hello comes first, before anything the input asked for.
    let frames = &written[head + 4..];
    let (hello, used) = testkit::ws::decode(frames).expect("the hello after the 101");
    assert!(
        hello.opcode == 1
            && hello
                .payload
                .starts_with(b"{\"type\":\"alive\",\"event\":\"hello\""),
        "{hello:?}"
    );
    (frames[used..].to_vec(), end)
}

const UPGRADE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn frames() -> impl Strategy<Value = Vec<u8>> {
    let one = (
        prop_oneof![Just(true), Just(true), Just(false)],
        prop_oneof![
            Just(1u8),
            Just(1),
            Just(0),
            Just(2),
            Just(8),
            Just(9),
            Just(10),
            Just(3)
        ],
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "[a-zé€😀 ]{0,20}".prop_map(String::into_bytes)
        ],
        prop_oneof![Just(true), Just(true), Just(true), Just(false)],
        prop_oneof![Just(0u8), Just(0), Just(0), Just(4)],
    );
    proptest::collection::vec(one, 0..12).prop_map(|frames| {
        frames
            .into_iter()
            .flat_map(|(fin, op, payload, masked, rsv)| frame(fin, op, &payload, masked, rsv))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn websocket_input_does_not_depend_on_how_bytes_are_split(
        bytes in frames(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assert_eq!(run_session(&bytes, &cuts), run_session(&bytes, &[]));
    }

    #[test]
    fn reversing_twice_gives_the_original(text in "\\PC{0,60}") {
        let (reply, flow) = run_session(&frame(true, 1, text.as_bytes(), true, 0), &[]);
        prop_assert_eq!(flow, None);
        let header = if text.len() < 126 { 2 } else { 4 };
        let reversed = String::from_utf8(reply[header..].to_vec()).unwrap();
        prop_assert_eq!(reversed.chars().count(), text.chars().count());
        prop_assert_eq!(&reversed, &text.chars().rev().collect::<String>());
        let (again, _) = run_session(&frame(true, 1, reversed.as_bytes(), true, 0), &[]);
        prop_assert_eq!(&again[header..], text.as_bytes());
    }
}

/// Feeds a byte stream to a whole connection, as the loop does: reads cut at `cuts`, every
/// output written as soon as it is queued. Returns everything the connection wrote and how it
/// ended, if it did. No socket and no clock: the connection is sans-IO.
fn run_connection(bytes: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<NextIo>) {
    let mut ctx = context();
    let mut conn = Connection::new(1, Listener::Public, 0);
    let mut written = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut last = 0;
    for point in points {
        let mut chunk = bytes[last..point].to_vec();
        last = point;
        if let Some(end) = conn.feed(&mut chunk, &mut ctx, &mut written) {
            return (written, Some(end));
        }
    }
    (written, None)
}

/// A conversation on the public port: pipelined requests, maybe an upgrade, then frames.
fn conversation() -> impl Strategy<Value = Vec<u8>> {
    let request = prop::sample::select(vec![
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD /app.js HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /readyz HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
    ]);
    let text = "[a-zé€😀 ]{0,30}".prop_map(|t| frame(true, 1, t.as_bytes(), true, 0));
    (
        proptest::collection::vec(request, 0..5),
        any::<bool>(),
        proptest::collection::vec(text, 0..6),
    )
        .prop_map(|(requests, upgrade, frames)| {
            let mut bytes: Vec<u8> = requests.concat().into_bytes();
            if upgrade {
                bytes.extend_from_slice(
                    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                );
                bytes.extend(frames.concat());
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_connection_answers_the_same_however_its_reads_are_split(
        bytes in conversation(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        prop_assert_eq!(run_connection(&bytes, &[]), run_connection(&bytes, &cuts));
    }
}
