"""Known TCP traffic between two network-namespace "hosts", for the eBPF tests.

  python -m flowattr.lab.netns_traffic server HOST PORT COUNT        (COUNT 0: until killed)
  python -m flowattr.lab.netns_traffic client HOST PORT PLAN_JSON   (prints one JSON line per connection)
  python -m flowattr.lab.netns_traffic rate HOST PORT PER_SECOND SECONDS

Each connection: the client sends an 8-byte header (payload length, reply length) and
the payload; the server replies with exactly the reply length and closes first; the
client reads to EOF and closes. Byte counts on the wire are therefore known exactly:
client sends 8 + n, receives m.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(min(1 << 16, n - len(buf)))
        if not chunk:
            raise ConnectionError("peer closed early")
        buf += chunk
    return buf


def server(host: str, port: int, count: int) -> None:
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen(64)
        print("ready", flush=True)
        served = 0
        while count == 0 or served < count:  # count 0: serve until killed
            served += 1
            conn, _ = srv.accept()
            with conn:
                n, m = struct.unpack("<II", _recv_exact(conn, 8))
                _recv_exact(conn, n)
                conn.sendall(b"r" * m)


def client(host: str, port: int, plan: list[dict]) -> None:
    for step in plan:
        sock = socket.socket()
        if step.get("bind_port"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", step["bind_port"]))
        t0 = time.monotonic_ns()
        sock.connect((host, port))
        local_port = sock.getsockname()[1]
        sock.sendall(struct.pack("<II", step["send"], step["reply"]) + b"s" * step["send"])
        got = 0
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            got += len(chunk)
        time.sleep(step.get("linger_ms", 0) / 1000)
        sock.close()
        t1 = time.monotonic_ns()
        print(json.dumps({"local_port": local_port, "sent": 8 + step["send"], "received": got,
                          "duration_ms": (t1 - t0) / 1e6}), flush=True)


def rate(host: str, port: int, per_second: float, seconds: float) -> None:
    """Open-and-close connections at a steady rate (for the exporter overhead benchmark);
    prints the number made and this process's CPU seconds as JSON."""
    start = time.monotonic()
    made = 0
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * per_second)
        while made < due:
            sock = socket.create_connection((host, port))
            sock.sendall(struct.pack("<II", 16, 16) + b"s" * 16)
            while sock.recv(1 << 16):
                pass
            sock.close()
            made += 1
        time.sleep(0.001)
    usage = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF)
    print(json.dumps({"connections": made, "seconds": time.monotonic() - start,
                      "cpu_s": usage.ru_utime + usage.ru_stime}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "rate":
        rate(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        client(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
