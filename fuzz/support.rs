// Shared by the fuzz targets (included, so each target stays one file for cargo fuzz).

#[allow(unused_imports)]
use wsdrain::config::{Command, Config};
use wsdrain::context::Context;
use wsdrain::http::{self, Parsed};
use wsdrain::metrics::Side;
use wsdrain::outbuf::OutQueue;
use wsdrain::routes;
use wsdrain::static_files::StaticFiles;
use wsdrain::websocket::Session;

pub fn context() -> Context {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../static");
    let Ok(Command::Run(config)) = Config::parse(Vec::<String>::new(), |name| {
        (name == "STATIC_DIR").then(|| dir.to_string())
    }) else {
        panic!("default config")
    };
    let files = StaticFiles::load(std::path::Path::new(dir)).expect("static dir");
    Context::new(
        *config,
        files,
        "fuzz",
        wsdrain::timers::Rng::seeded(1),
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
        for side in [Side::Public, Side::Admin] {
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

/// Runs bytes through a WebSocket session, optionally split in two reads; returns the output.
#[allow(dead_code)]
pub fn run_frames(bytes: &[u8], split: Option<usize>) -> (Vec<u8>, String) {
    let mut ctx = context();
    let mut session = Session::new(&mut ctx.session());
    let mut out = OutQueue::new();
    let mut pending = Vec::new();
    let cut = split.unwrap_or(bytes.len());
    let mut flow = String::from("open");
    for part in [&bytes[..cut], &bytes[cut..]] {
        pending.extend_from_slice(part);
        let (used, f) = session.on_input(&mut pending, &mut out, usize::MAX, &mut ctx.session());
        pending.drain(..used);
        flow = format!("{f:?}");
        if flow != "Open" {
            break;
        }
    }
    let mut written = Vec::new();
    out.write_to(&mut written).expect("vec write");
    (written, flow)
}
