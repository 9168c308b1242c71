#!/usr/bin/env python3
"""h2_idle: opens many HTTP/2 connections over TLS, has each answer one GET, then holds them idle.

  h2_idle.py --port PORT [--host 127.0.0.1] [--path /cache/1k] [--size 1024]
             [--conns 1000] [--hold 4] [--timeout 10]

bench/run's h2 scenario uses it to measure what an open, idle HTTP/2 connection costs a proxy in
memory. One connection after another, each one:

  1. connects with TCP_NODELAY set, as h2load, curl and browsers do, and negotiates TLS with ALPN
     offering only "h2" (the certificate is not checked);
  2. sends the client connection preface, a SETTINGS frame (push disabled), and a HEADERS frame
     with one GET of PATH on stream 1 (END_STREAM): an HPACK block of static-table references and
     literals without Huffman coding, with :authority HOST:PORT, as h2load and wrk send it;
  3. reads frames until stream 1 has ended, acknowledging the server's SETTINGS and PINGs. The
     answer must be a 200 whose DATA add up to SIZE bytes;
  4. stays open and sends nothing more.

Once every connection has been tried it prints a `ready` line, waits HOLD seconds (the bench reads
the server's memory meanwhile), then checks every connection without blocking: one the server has
closed, reset, or sent a GOAWAY on counts as closed. It prints a `summary` line and closes them all.

Output, one line each, for a script to read (key=value fields):
  ready   t=SECONDS ok=N failed=N
  summary ok=N failed=N open=N closed=N first_error=TEXT
ok: connections that negotiated h2 and whose GET was answered as expected, the ones held; failed:
connections that could not be opened or answered, closed at once (first_error says why, for the
first of them, with underscores for spaces); open, closed: of the held ones, at the end of the
hold.
Only the standard library is used.
"""

import argparse
import select
import socket
import ssl
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20

# :status values in HPACK's static table (RFC 7541, appendix A), by index.
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
# The Huffman codes of the ten digits (RFC 7541, appendix B), enough to read a coded :status.
HUFFMAN_DIGITS = {
    "00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4",
    "011011": "5", "011100": "6", "011101": "7", "011110": "8", "011111": "9",
}


class Failure(Exception):
    pass


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_string(text):
    raw = text.encode()
    if len(raw) >= 127:
        raise Failure("header value too long for this client: %r" % text)
    return bytes([len(raw)]) + raw  # H = 0: no Huffman coding


def request_block(authority, path):
    return (b"\x82"                             # :method GET (static 2)
            + b"\x87"                           # :scheme https (static 7)
            + b"\x04" + hpack_string(path)      # :path, literal without indexing, name static 4
            + b"\x01" + hpack_string(authority))  # :authority, literal without indexing, name static 1


def read_integer(block, pos, prefix_bits):
    limit = (1 << prefix_bits) - 1
    value = block[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def huffman_digits(data):
    bits = "".join(format(byte, "08b") for byte in data)
    out, code = "", ""
    for bit in bits:
        code += bit
        if code in HUFFMAN_DIGITS:
            out += HUFFMAN_DIGITS[code]
            code = ""
        elif len(code) > 6:
            break
    return out


def response_status(block):
    """The :status of a response header block (the first field, RFC 9113 8.3)."""
    pos = 0
    while pos < len(block) and block[pos] & 0xE0 == 0x20:  # dynamic table size updates
        _, pos = read_integer(block, pos, 5)
    if pos >= len(block):
        raise Failure("empty header block")
    first = block[pos]
    if first & 0x80:  # indexed field
        index, _ = read_integer(block, pos, 7)
        if index in STATIC_STATUS:
            return STATIC_STATUS[index]
        raise Failure("first header field is index %d, not a static :status" % index)
    prefix = 6 if first & 0x40 else 4  # literal with incremental indexing, or without / never indexed
    index, pos = read_integer(block, pos, prefix)
    if index not in STATIC_STATUS:
        raise Failure("first header field is not :status (name index %d)" % index)
    huffman = block[pos] & 0x80
    length, pos = read_integer(block, pos, 7)
    value = block[pos:pos + length]
    text = huffman_digits(value) if huffman else value.decode("ascii", "replace")
    if not text.isdigit():
        raise Failure("unreadable :status %r" % value)
    return int(text)


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def frames(self, data):
        """Adds received bytes; yields each complete frame as (type, flags, stream, payload)."""
        self.buffer += data
        while len(self.buffer) >= 9:
            length = struct.unpack(">I", b"\0" + self.buffer[:3])[0]
            if len(self.buffer) < 9 + length:
                return
            kind, flags = self.buffer[3], self.buffer[4]
            stream = struct.unpack(">I", self.buffer[5:9])[0] & 0x7FFFFFFF
            payload = self.buffer[9:9 + length]
            self.buffer = self.buffer[9 + length:]
            yield kind, flags, stream, payload

    def answer_control(self, kind, flags, payload):
        if kind == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))


def strip_padding(flags, payload, kind):
    if flags & PADDED:
        pad = payload[0]
        payload = payload[1:len(payload) - pad]
    if kind == HEADERS and flags & PRIORITY:
        payload = payload[5:]
    return payload


def open_one(context, host, port, path, size, timeout):
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        # Without it, a server that sends nothing between the end of a TLS 1.3 handshake and its
        # first response leaves the client's Finished unacknowledged until the delayed ACK (about
        # 40 ms on Linux), and Nagle's algorithm holds the request until then.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = context.wrap_socket(raw, server_hostname=None)
    except Exception:
        raw.close()
        raise
    conn = Connection(sock)
    try:
        if sock.selected_alpn_protocol() != "h2":
            raise Failure("ALPN chose %r, not h2" % sock.selected_alpn_protocol())
        settings = struct.pack(">HI", 0x2, 0)  # SETTINGS_ENABLE_PUSH = 0
        block = request_block("%s:%d" % (host, port), path)
        conn.send(PREFACE + frame(SETTINGS, 0, 0, settings) + frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        status, body, done = None, 0, False
        while not done:
            data = sock.recv(65536)
            if not data:
                raise Failure("the server closed the connection before the response ended")
            for kind, flags, stream, payload in conn.frames(data):
                conn.answer_control(kind, flags, payload)
                if kind == GOAWAY:
                    raise Failure("GOAWAY before the response ended")
                if stream != 1:
                    continue
                if kind == RST_STREAM:
                    raise Failure("RST_STREAM on the request")
                if kind == HEADERS:
                    if status is None:
                        status = response_status(strip_padding(flags, payload, kind))
                    done = bool(flags & END_STREAM)
                elif kind == DATA:
                    body += len(strip_padding(flags, payload, kind))
                    done = bool(flags & END_STREAM)
        if status != 200 or body != size:
            raise Failure("answered %s with %d body bytes, not 200 with %d" % (status, body, size))
        sock.settimeout(0)
        return conn
    except Exception:
        sock.close()
        raise


def still_open(conn):
    """False if the server has closed, reset or sent GOAWAY on the connection."""
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
        if not readable and not conn.sock.pending():
            return True
        while True:
            try:
                data = conn.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                return True
            if not data:
                return False
            for kind, flags, _, payload in conn.frames(data):
                if kind == GOAWAY:
                    return False
                conn.answer_control(kind, flags, payload)
    except (OSError, ssl.SSLError):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cache/1k")
    parser.add_argument("--size", type=int, default=1024, help="expected body bytes")
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=4, help="seconds to hold them once all are open")
    parser.add_argument("--timeout", type=float, default=10, help="seconds for each connect and answer")
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])

    start = time.monotonic()
    conns, failed, first_error = [], 0, ""
    for _ in range(args.conns):
        try:
            conns.append(open_one(context, args.host, args.port, args.path, args.size, args.timeout))
        except Exception as error:  # noqa: BLE001 -- every failure is counted and the first reported
            failed += 1
            if not first_error:
                first_error = "%s: %s" % (type(error).__name__, error)
    print("ready t=%.2f ok=%d failed=%d" % (time.monotonic() - start, len(conns), failed), flush=True)

    time.sleep(args.hold)
    open_now = sum(1 for conn in conns if still_open(conn))
    for conn in conns:
        try:
            conn.sock.close()
        except OSError:
            pass
    print("summary ok=%d failed=%d open=%d closed=%d first_error=%s"
          % (len(conns), failed, open_now, len(conns) - open_now,
             (first_error or "none").replace(" ", "_")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
