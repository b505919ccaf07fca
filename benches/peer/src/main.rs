//! The benchmark peer: a reverse-echo WebSocket server written the way a careful tokio user
//! would write it, so wsdrain is compared with something fair.
//!
//! - current-thread runtime (the same single core wsdrain's loop uses);
//! - each text message is answered with the text reversed by Unicode scalar values;
//! - replies are fed into the sink and flushed once per batch of messages that are ready,
//!   not once per message;
//! - `--buffers default` keeps tungstenite's defaults (128 KiB read buffer); `--buffers 4k`
//!   uses 4 KiB read and write buffers, the usual memory tuning.
//!
//! Usage: peer --port PORT [--buffers default|4k]. Prints `listening ADDR` when ready.

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn main() {
    let mut port = 0u16;
    let mut small = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().map(String::as_str)) {
            ("--port", Some(p)) => port = p.parse().unwrap_or_else(|_| usage()),
            ("--buffers", Some("4k")) => small = true,
            ("--buffers", Some("default")) => small = false,
            _ => usage(),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    runtime.block_on(serve(port, small));
}

fn usage() -> ! {
    fail("usage: peer --port PORT [--buffers default|4k]")
}

fn fail(msg: &str) -> ! {
    eprintln!("peer: {msg}");
    std::process::exit(2)
}

async fn serve(port: u16, small: bool) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| fail(&format!("bind: {e}")));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    println!("listening {addr}");
    let config = if small {
        WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(4096)
    } else {
        WebSocketConfig::default()
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, config));
            }
            Err(e) => eprintln!("peer: accept: {e}"),
        }
    }
}

async fn connection(stream: TcpStream, config: WebSocketConfig) {
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    while let Some(Ok(first)) = ws.next().await {
        let mut next = Some(first);
        // Answer every message that is already here, then flush once.
        while let Some(message) = next.take() {
            if let Message::Text(text) = message {
                let reversed: String = text.chars().rev().collect();
                if ws.feed(Message::text(reversed)).await.is_err() {
                    return;
                }
            }
            if let Some(Some(Ok(more))) = ws.next().now_or_never() {
                next = Some(more);
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}
