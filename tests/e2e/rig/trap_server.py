#!/usr/bin/env python3
"""Leak trap listener (runs inside the trap container; stdlib only, Python 3.6+).

Listens on TCP 80, 443, 5000, 53 and UDP 53, 123 on every address of the container. Records one
JSON line per connection / datagram in the log file: time, proto, port, peer, first bytes (hex and
printable), TLS SNI, HTTP Host header and request line, DNS query name. DNS queries are answered
with the trap's own address, so every name a node looks up leads back here. HTTP gets a 503.
"""

import json
import os
import socket
import struct
import sys
import threading
import time

LOG = "/trap/connections.jsonl"  # main() sets both from argv
ADDR = "192.168.251.250"
TCP_PORTS = (80, 443, 5000, 53)
UDP_PORTS = (53, 123)
_lock = threading.Lock()


def record(entry):
    entry["time"] = round(time.time(), 3)
    with _lock, open(LOG, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()


def parse_sni(data):
    """Server name from a TLS ClientHello, or None."""
    try:
        if len(data) < 5 or data[0] != 0x16:
            return None
        p = 5
        if data[p] != 0x01:
            return None
        p += 4 + 2 + 32  # handshake header, client_version, random
        sid_len = data[p]
        p += 1 + sid_len
        cs_len = struct.unpack("!H", data[p:p + 2])[0]
        p += 2 + cs_len
        cm_len = data[p]
        p += 1 + cm_len
        ext_total = struct.unpack("!H", data[p:p + 2])[0]
        p += 2
        end = min(len(data), p + ext_total)
        while p + 4 <= end:
            etype, elen = struct.unpack("!HH", data[p:p + 4])
            p += 4
            if etype == 0:
                q = p + 2  # server_name_list length
                while q + 3 <= p + elen:
                    ntype = data[q]
                    nlen = struct.unpack("!H", data[q + 1:q + 3])[0]
                    if ntype == 0:
                        return data[q + 3:q + 3 + nlen].decode("ascii", "replace")
                    q += 3 + nlen
            p += elen
    except (IndexError, struct.error, UnicodeError):
        return None
    return None


def dns_qname(msg, off=12):
    labels = []
    for _ in range(128):
        if off >= len(msg):
            break
        n = msg[off]
        if n == 0:
            off += 1
            break
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels), off


def dns_answer(msg):
    """A response to a DNS query: every A question gets ADDR; others get an empty answer."""
    if len(msg) < 12:
        return None, None
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    name, off = dns_qname(msg)
    if off + 4 > len(msg):
        return name, None
    qtype = struct.unpack("!H", msg[off:off + 2])[0]
    question = msg[12:off + 4]
    an = 1 if qtype == 1 else 0
    hdr = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, an, 0, 0)
    body = question
    if an:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ADDR)
    return name, hdr + body


def describe(port, data):
    entry = {"first_bytes_hex": data[:64].hex(),
             "first_bytes": "".join(chr(b) if 32 <= b < 127 else "." for b in data[:200])}
    sni = parse_sni(data)
    if sni:
        entry["sni"] = sni
    if data[:1].isalpha():
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1", "replace")
        lines = head.split("\r\n")
        entry["request_line"] = lines[0]
        for line in lines[1:]:
            if line.lower().startswith("host:"):
                entry["host"] = line.split(":", 1)[1].strip()
    if port == 53 and len(data) > 14:
        entry["dns_query"] = dns_qname(data[2:])[0]
    return entry


def handle_tcp(conn, peer, port):
    data = b""
    try:
        conn.settimeout(3)
        while len(data) < 4096:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data or parse_sni(data) or (port == 53 and len(data) > 14):
                break
    except OSError:
        pass
    entry = {"proto": "tcp", "port": port, "peer": peer[0], "peer_port": peer[1]}
    entry.update(describe(port, data))
    record(entry)
    try:
        if data[:1].isalpha():
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                         b"Connection: close\r\nContent-Length: 37\r\n\r\nairgap-bundler rig: leak trapped here\n")
        elif port == 53 and len(data) > 14:
            _, resp = dns_answer(data[2:])
            if resp:
                conn.sendall(struct.pack("!H", len(resp)) + resp)
    except OSError:
        pass
    finally:
        conn.close()


def tcp_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    return s


def serve_tcp(s, port):
    while True:
        conn, peer = s.accept()
        threading.Thread(target=handle_tcp, args=(conn, peer, port), daemon=True).start()


def udp_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    return s


def serve_udp(s, port):
    while True:
        data, peer = s.recvfrom(4096)
        entry = {"proto": "udp", "port": port, "peer": peer[0], "peer_port": peer[1],
                 "first_bytes_hex": data[:64].hex()}
        resp = None
        if port == 53:
            entry["dns_query"], resp = dns_answer(data)
        record(entry)
        if resp:
            try:
                s.sendto(resp, peer)
            except OSError:
                pass


def main():
    global LOG, ADDR
    if len(sys.argv) > 1:
        LOG = sys.argv[1]
    if len(sys.argv) > 2:
        ADDR = sys.argv[2]
    open(LOG, "a").close()
    socks = [(serve_tcp, tcp_socket(p), p) for p in TCP_PORTS]
    socks += [(serve_udp, udp_socket(p), p) for p in UDP_PORTS]
    for fn, sock, port in socks:  # all bound before "ready" is written
        threading.Thread(target=fn, args=(sock, port), daemon=True).start()
    with open(os.path.join(os.path.dirname(LOG), "ready"), "w") as f:
        f.write(str(os.getpid()) + "\n")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
