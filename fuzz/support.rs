// Shared by the fuzz targets (included, so each target stays one file for cargo fuzz).

#[allow(unused_imports)]
use wsdrain::config::{Command, Config};
use wsdrain::app::context::Context;
use wsdrain::protocol::http::{self, Parsed};
use wsdrain::net::Listener;
use wsdrain::base::outbuf::OutQueue;
use wsdrain::app::routes;
use wsdrain::app::static_files::{StaticFiles, StaticLimits};
use wsdrain::connection::Connection;

pub fn context() -> Context {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../static");
    let Ok(Command::Run(config)) = Config::parse(Vec::<String>::new(), |name| {
        (name == "STATIC_DIR").then(|| dir.to_string())
    }) else {
        panic!("default config")
    };
    let files = StaticFiles::load(std::path::Path::new(dir), StaticLimits::of(&config)).expect("static dir");
    Context::new(
        *config,
        files,
        "fuzz",
        wsdrain::base::timers::Rng::seeded(1),
        std::time::SystemTime::now,
    )
}

/// What parsing decided, as text.
#[allow(dead_code)]
pub fn parse_outcome(buf: &[u8]) -> String {
    let mut storage = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
    match http::parse(buf, &mut storage, 8192) {
        Parsed::Partial => "partial".into(),
        Parsed::Complete(head, len) => format!("{len} {} {} {}", head.method_name, head.path, head.keep_alive),
        Parsed::Invalid(e) => format!("invalid {}", e.status),
    }
}

/// Answers every request in `buf`, on both ports, as a connection would.
#[allow(dead_code)]
pub fn answer_all(mut buf: &[u8]) {
    let mut ctx = context();
    while !buf.is_empty() {
        let mut storage = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
        let Parsed::Complete(head, len) = http::parse(buf, &mut storage, 8192) else { return };
        for side in [Listener::Public, Listener::Admin] {
            let mut out = OutQueue::new();
            match routes::handle(&head, side, &mut ctx) {
                routes::Action::Respond(r) | routes::Action::Upgrade(r) => r.write_to(&mut out, "D", false),
                routes::Action::AwaitPreStop { .. } => {}
            }
            let mut sink = Vec::new();
            out.write_to(&mut sink).expect("vec write");
        }
        buf = &buf[len..];
    }
}

/// Runs bytes through an upgraded connection, optionally split in two reads; returns what the
/// WebSocket wrote and how the connection ended.
#[allow(dead_code)]
pub fn run_frames(bytes: &[u8], split: Option<usize>) -> (Vec<u8>, String) {
    let mut ctx = context();
    let mut conn = Connection::new(1, Listener::Public, 0);
    let mut written = Vec::new();
    let mut upgrade = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    assert!(conn.feed(&mut upgrade, &mut ctx, &mut written).is_none());
    written.clear();
    let cut = split.unwrap_or(bytes.len());
    let mut end = String::from("open");
    for part in [&bytes[..cut], &bytes[cut..]] {
        if let Some(e) = conn.feed(&mut part.to_vec(), &mut ctx, &mut written) {
            end = format!("{e:?}");
            break;
        }
    }
    (written, end)
}
