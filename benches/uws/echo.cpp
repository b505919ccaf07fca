// A benchmark peer on uWebSockets (uWS::App over uSockets, epoll): the same reverse-echo service
// as wsdrain, in one thread, so that benches/run.sh can compare the two on the same load.
//
// - text messages are answered with the text reversed by Unicode scalar values (UTF-8 bytes of a
//   character stay together, as in wsdrain); uWS has validated the UTF-8 (1007 otherwise);
// - binary messages are refused with close 1003, as wsdrain does;
// - no TLS, no compression, no idle timeout and no automatic pings (wsdrain's pings come after
//   30 s of silence, past any benchmark run), messages up to 64 KiB (wsdrain's MAX_MESSAGE_SIZE;
//   bigger: uWS closes the TCP connection without a close frame, where wsdrain sends 1009),
//   1 MiB of queued output per socket before it is shut (wsdrain's MAX_OUTPUT_BYTES);
// - an optional alive timer, for the fan-out comparison: every ALIVE_MS, one small text message
//   starting with {"type":"alive" (the loadgen counts those) to every open WebSocket. Two ways:
//     --fanout each     (default) a loop over the open sockets, one ws->send each: what wsdrain
//                       does (one write per WebSocket per alive message), with the list of
//                       sockets kept in each socket's user data (two pointers);
//     --fanout publish  every socket subscribes to one topic at open and the timer calls
//                       app.publish: uWS's own fan-out path (topic tree, corked batches); a
//                       subscription costs memory per socket, so memory runs use "each".
//     --fanout spread   as wsdrain spreads them: sockets take the points of a 100 ms grid
//                       in turn at open, in blocks of 64 opened one after another (ALIVE_MS a
//                       multiple of 100), and a timer every
//                       100 ms sends to the sockets of that point, one ws->send each: every
//                       socket one message per ALIVE_MS, the first within its first interval,
//                       and a tenth of them per tick at 1 s instead of all in one.
//
// Usage: echo [--port PORT] [--alive-ms MS] [--fanout each|publish|spread]
//   PORT 0 (default) = any free port; ALIVE_MS 0 (default) = no alive messages.
// Prints "listening 127.0.0.1:PORT" when ready (the port the kernel gave the listen socket).
//
// Built against a uWebSockets checkout (with uSockets inside) outside this repository, with
// LIBUS_NO_SSL and UWS_NO_ZLIB; see "uWebSockets" in docs/benchmarks.md.

#include "App.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

struct Socket;
using WS = uWS::WebSocket<false, true, Socket>;

// Per-socket user data: links in the list of open sockets (--fanout each; spread: in the list of
// its grid point), and its grid point (spread). Publish mode leaves them null.
struct Socket {
    WS *prev = nullptr;
    WS *next = nullptr;
    unsigned point = 0;
};

WS *open_sockets = nullptr; // head of the list (each)
unsigned long open_count = 0;

// spread: a list of sockets per point of the 100 ms grid.
const int GRID_MS = 100;
WS *grid_lists[1024] = {};
unsigned grid_points = 1;
unsigned long long grid_ticks = 0;
// spread: sockets opened so far; a socket's point is its block's (ALIVE_BLOCK consecutive opens).
unsigned long long opened = 0;
const unsigned long long ALIVE_BLOCK = 64;

enum class Fanout { Each, Publish, Spread };
Fanout fanout = Fanout::Each;
int alive_ms = 0;
uWS::App *app = nullptr;
const char *TOPIC = "alive";
std::string alive_text;   // the alive message, formatted once per tick
unsigned long long ticks = 0;

// The list a socket is in: the one list (each), or its grid point's (spread).
WS *&list_of(WS *ws) {
    return fanout == Fanout::Spread ? grid_lists[ws->getUserData()->point] : open_sockets;
}

void link(WS *ws) {
    Socket *s = ws->getUserData();
    if (fanout == Fanout::Spread) s->point = (unsigned) (opened++ / ALIVE_BLOCK % grid_points);
    WS *&head = list_of(ws);
    s->next = head;
    if (head) head->getUserData()->prev = ws;
    head = ws;
    open_count++;
}

void unlink(WS *ws) {
    Socket *s = ws->getUserData();
    WS *&head = list_of(ws);
    if (s->prev) s->prev->getUserData()->next = s->next;
    else head = s->next;
    if (s->next) s->next->getUserData()->prev = s->prev;
    s->prev = s->next = nullptr;
    open_count--;
}

// Appends `text` reversed by Unicode scalar values: each UTF-8 sequence moves as a unit. The
// input is valid UTF-8 (uWS checked it); a stray byte would move alone. ASCII text (the common
// case, and the benchmarks' messages) is reversed byte by byte, as wsdrain does.
void reverse_scalars(std::string_view text, std::string &out) {
    size_t n = text.size();
    out.resize(n);
    const unsigned char *src = (const unsigned char *) text.data();
    char *dst = out.data();
    if (std::all_of(src, src + n, [](unsigned char b) { return b < 0x80; })) {
        std::reverse_copy(text.begin(), text.end(), dst);
        return;
    }
    size_t i = 0;
    while (i < n) {
        unsigned char b = src[i];
        size_t len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
        if (len > n - i) len = n - i;
        std::memcpy(dst + (n - i - len), src + i, len);
        i += len;
    }
}

void on_alive(us_timer_t *) {
    ticks++;
    alive_text = "{\"type\":\"alive\",\"instance\":\"uws\",\"phase\":\"serving\",\"interval_ms\":" +
                 std::to_string(alive_ms) + ",\"tick\":" + std::to_string(ticks) + "}";
    if (fanout == Fanout::Publish) {
        app->publish(TOPIC, alive_text, uWS::OpCode::TEXT);
        return;
    }
    WS *first = open_sockets;
    if (fanout == Fanout::Spread) first = grid_lists[grid_ticks++ % grid_points];
    // A send can shut the socket it is given (over the output limit); the next one is read first.
    for (WS *ws = first; ws;) {
        WS *next = ws->getUserData()->next;
        ws->send(alive_text, uWS::OpCode::TEXT);
        ws = next;
    }
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: echo [--port PORT] [--alive-ms MS] [--fanout each|publish|spread]\n");
    std::exit(2);
}

} // namespace

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) usage();
        std::string_view flag = argv[i], value = argv[i + 1];
        char *end = nullptr;
        if (flag == "--port") {
            port = (int) std::strtol(argv[i + 1], &end, 10);
            if (*end || port < 0 || port > 65535) usage();
        } else if (flag == "--alive-ms") {
            alive_ms = (int) std::strtol(argv[i + 1], &end, 10);
            if (*end || alive_ms < 0) usage();
        } else if (flag == "--fanout" && value == "each") {
            fanout = Fanout::Each;
        } else if (flag == "--fanout" && value == "publish") {
            fanout = Fanout::Publish;
        } else if (flag == "--fanout" && value == "spread") {
            fanout = Fanout::Spread;
        } else {
            usage();
        }
    }

    static std::string reply; // reused for every reply: no allocation per message
    uWS::App server;
    app = &server;
    server.ws<Socket>("/*", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 64 * 1024,
        .idleTimeout = 0,
        .maxBackpressure = 1024 * 1024,
        .closeOnBackpressureLimit = true,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = false,
        .open = [](WS *ws) {
            if (fanout == Fanout::Publish) ws->subscribe(TOPIC);
            else link(ws);
        },
        .message = [](WS *ws, std::string_view message, uWS::OpCode op) {
            if (op != uWS::OpCode::TEXT) {
                ws->end(1003, "binary messages are not accepted");
                return;
            }
            reverse_scalars(message, reply);
            ws->send(reply, uWS::OpCode::TEXT);
        },
        .close = [](WS *ws, int, std::string_view) {
            if (fanout != Fanout::Publish) unlink(ws);
        },
    }).listen("127.0.0.1", port, [](us_listen_socket_t *listen_socket) {
        if (!listen_socket) {
            std::fprintf(stderr, "echo: cannot listen on 127.0.0.1\n");
            std::exit(1);
        }
        int bound = us_socket_local_port(0, (us_socket_t *) listen_socket);
        std::printf("listening 127.0.0.1:%d\n", bound);
        std::fflush(stdout);
    });

    if (alive_ms > 0) {
        int period = alive_ms;
        if (fanout == Fanout::Spread) {
            if (alive_ms % GRID_MS != 0 || alive_ms / GRID_MS > 1024) usage();
            grid_points = (unsigned) (alive_ms / GRID_MS);
            period = GRID_MS;
        }
        us_timer_t *timer = us_create_timer((us_loop_t *) uWS::Loop::get(), 0, 0);
        us_timer_set(timer, on_alive, period, period);
    }
    server.run();
    return 0;
}
