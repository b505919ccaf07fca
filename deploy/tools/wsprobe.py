#!/usr/bin/env python3
"""A raw RFC 6455 client (Python 3 stdlib only) for checking a wsdrain binary from outside.

  wsprobe.py smoke --port P --admin-port A --page static/index.html
      GET /healthz (both ports), GET / (must equal the page file), one WebSocket:
      masked text "héllo" -> "olléh".
  wsprobe.py expect-close --port P [--code 1012]
      opens a WebSocket, checks one echo, prints "open", then waits for the server's close
      frame (e.g. the drain's 1012 after SIGTERM), checks its code and answers it.
"""

import argparse
import base64
import hashlib
import os
import socket
import struct
import sys
import urllib.request

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    def __init__(self, host, port, path="/ws", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise RuntimeError(f"upgrade refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise RuntimeError("bad Sec-WebSocket-Accept")

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("server closed the connection")
        self.buf += data

    @staticmethod
    def frame(text, opcode=1):
        payload = text.encode() if isinstance(text, str) else text
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        return head + mask + masked

    def send_text(self, text):
        self.sock.sendall(self.frame(text))

    def recv_frame(self):
        """Next (opcode, payload) from the server (server frames are never masked)."""
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n, off = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, off = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
                elif n >= 126:
                    n = None
                if n is not None and len(self.buf) >= off + n:
                    payload, self.buf = self.buf[off : off + n], self.buf[off + n :]
                    return b0 & 0x0F, payload
            self._fill()

    def recv_text(self):
        """Next text reply, skipping the server's alive messages, pings and pongs."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 1 and not payload.startswith(b'{"type":"alive"'):
                return payload.decode()
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise RuntimeError(f"server sent close {code}")

    def close(self):
        try:
            self.sock.sendall(self.frame(struct.pack("!H", 1000), opcode=8))
        finally:
            self.sock.close()


class CheckFailed(Exception):
    """A check on the server's answer failed."""


def expect(condition, message):
    """A check that holds under `python3 -O` too (an `assert` would vanish there, and the tier
    would pass whatever the server answered)."""
    if not condition:
        raise CheckFailed(message)


def http_get(host, port, path):
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
        return r.status, r.read()


def smoke(args):
    for port in (args.port, args.admin_port):
        status, body = http_get(args.host, port, "/healthz")
        expect(status == 200 and body.strip() == b"ok", f":{port}/healthz -> {status} {body!r}")
    status, body = http_get(args.host, args.admin_port, "/readyz")
    expect(status == 200, f"/readyz -> {status}")
    status, body = http_get(args.host, args.port, "/")
    with open(args.page, "rb") as f:
        expect(status == 200 and body == f.read(), f"GET / -> {status}, {len(body)} bytes")
    ws = WebSocket(args.host, args.port)
    ws.send_text("héllo")
    reply = ws.recv_text()
    expect(reply == "olléh", f"echo: {reply!r}")
    ws.close()
    print("smoke ok: /healthz on both ports, /readyz, GET / matches the page, 'héllo' -> 'olléh'")


def expect_close(args):
    ws = WebSocket(args.host, args.port, timeout=args.timeout)
    ws.send_text("drain")
    expect(ws.recv_text() == "niard", "echo before the close")
    print("open", flush=True)
    while True:
        opcode, payload = ws.recv_frame()
        if opcode == 8:
            break
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    reason = payload[2:].decode(errors="replace")
    expect(code == args.code, f"close code {code} ({reason!r}), want {args.code}")
    ws.sock.sendall(WebSocket.frame(payload[:2], opcode=8))
    ws.sock.close()
    print(f"closed by the server with {code} {reason!r}; close answered")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("smoke")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--admin-port", type=int, required=True)
    s.add_argument("--page", required=True)
    x = sub.add_parser("expect-close")
    x.add_argument("--host", default="127.0.0.1")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--code", type=int, default=1012)
    x.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    try:
        {"smoke": smoke, "expect-close": expect_close}[args.cmd](args)
    except (CheckFailed, RuntimeError, OSError) as err:
        print(f"wsprobe {args.cmd}: FAIL: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
