"""The leak trap's parsers and recorder, without the rig (in-memory TLS, socketpairs: no network)."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
from pathlib import Path

import pytest
from rig import trap_server


def client_hello(server_name: str) -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def dns_query(name: str, qtype: int = 1) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def test_sni_from_client_hello() -> None:
    assert trap_server.parse_sni(client_hello("registry.k8s.io")) == "registry.k8s.io"
    assert trap_server.parse_sni(b"GET / HTTP/1.1\r\n\r\n") is None
    assert trap_server.parse_sni(b"\x16\x03\x01\x00") is None


def test_dns_answers_every_a_query_with_the_trap() -> None:
    name, resp = trap_server.dns_answer(dns_query("pkgs.k8s.io"))
    assert name == "pkgs.k8s.io"
    assert resp is not None
    qid, flags, qd, an = struct.unpack("!HHHH", resp[:8])
    assert (qid, qd, an) == (0x1234, 1, 1) and flags & 0x8000
    assert resp[-4:] == socket.inet_aton(trap_server.ADDR)
    name, resp = trap_server.dns_answer(dns_query("pkgs.k8s.io", qtype=28))  # AAAA: empty answer
    assert resp is not None and struct.unpack("!H", resp[6:8])[0] == 0


@pytest.mark.parametrize(
    ("port", "payload", "field", "value"),
    [
        (80, b"GET /v2/ HTTP/1.1\r\nHost: quay.io\r\nUser-Agent: t\r\n\r\n", "host", "quay.io"),
        (443, None, "sni", "ghcr.io"),
        (53, None, "dns_query", "dl.k8s.io"),
    ],
)
def test_handle_tcp_records_the_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, port: int,
                                           payload: bytes | None, field: str, value: str) -> None:
    log = tmp_path / "connections.jsonl"
    monkeypatch.setattr(trap_server, "LOG", str(log))
    if payload is None:
        payload = client_hello("ghcr.io") if port == 443 else struct.pack("!H", 29) + dns_query("dl.k8s.io")
    server, client = socket.socketpair()
    t = threading.Thread(target=trap_server.handle_tcp, args=(server, ("192.168.251.12", 40000), port))
    t.start()
    client.sendall(payload)
    client.settimeout(5)
    reply = b""
    try:
        while chunk := client.recv(4096):
            reply += chunk
    except OSError:
        pass
    client.close()
    t.join(10)
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry[field] == value
    assert entry["peer"] == "192.168.251.12" and entry["port"] == port and entry["proto"] == "tcp"
    if port == 80:
        assert reply.startswith(b"HTTP/1.1 503")
