"""The credential sweep's tools: the inventory of raw credentials a test saw, a browser
that notes every cookie it is given, a recorder between the app and Janus (the room
secret travels only there), and the search of a `pg_dump`, a Redis and logs for them.

The search reads as someone holding a copy would: raw bytes, and what plain encodings
hide (base64 and base64url runs, zlib inside them: Django's signed session data and
kombu's message bodies are readable so, without any key).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import subprocess
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import requests

CSRF_FIELD_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# Shortest credential searched: a backup code (8 characters); anything shorter would
# match by chance.
MIN_SECRET_CHARS = 8
_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{24,}")


@dataclass
class Credential:
    kind: str  # a row of the credentials inventory (docs/SECURITY.md)
    owner: str
    forms: tuple[str, ...]  # the value as the person saw it, then equivalent spellings


@dataclass
class Inventory:
    """Every raw credential the flow saw, by inventory kind."""

    items: list[Credential] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, kind: str, owner: str, value: str, *also: str) -> str:
        assert len(value) >= MIN_SECRET_CHARS, f"{kind} of {owner} is too short to search: {value!r}"
        if (kind, value) not in self._seen:
            self._seen.add((kind, value))
            forms = tuple(dict.fromkeys([value, *(a for a in also if len(a) >= MIN_SECRET_CHARS)]))
            self.items.append(Credential(kind, owner, forms))
        return value

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        return counts

    def masked(self, text: str) -> str:
        """`text` with every credential replaced by its kind: safe to print."""
        for item in sorted(self.items, key=lambda i: -max(len(f) for f in i.forms)):
            for form in item.forms:
                text = text.replace(form, f"«{item.kind}»")
        return text


class Browser(requests.Session):
    """A person's browser: every session and CSRF cookie it is given goes in the inventory,
    and so does every CSRF token a page gives it."""

    def __init__(self, base: str, inventory: Inventory, owner: str) -> None:
        super().__init__()
        self.base = base
        self.inventory = inventory
        self.owner = owner
        self.hooks["response"].append(self._note_cookies)

    def _note_cookies(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        for cookie in response.cookies:
            if cookie.value and cookie.name == "sessionid":
                self.inventory.add("session key", self.owner, cookie.value)
            elif cookie.value and cookie.name == "csrftoken":
                self.inventory.add("CSRF token", self.owner, cookie.value)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = str(url)
        kwargs.setdefault("timeout", 30)
        return super().request(method, url if url.startswith("http") else self.base + url, *args, **kwargs)

    def csrf(self, page: requests.Response) -> str:
        found = CSRF_FIELD_RE.search(page.text)
        assert found, f"no form on {page.url} ({page.status_code}): {page.text[:300]}"
        return self.inventory.add("CSRF token", self.owner, found.group(1))

    def submit(self, page: requests.Response, data: dict[str, str], url: str = "") -> requests.Response:
        """Post the form on `page` (to `url`, else back to the page) with its CSRF token."""
        return self.post(url or page.url, data={"csrfmiddlewaretoken": self.csrf(page), **data})


# --- Between the app and Janus ---------------------------------------------------------


class JanusRecorder:
    """A loopback HTTP relay the app uses as JANUS_URL: each request goes on to the real
    Janus, and the credentials in it (admin key, room secret, pin, allowed tokens) are kept
    in memory only, so the sweep knows them whatever form the app keeps them in."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.seen: list[tuple[str, str]] = []  # (inventory kind, value)
        recorder = self

        class Relay(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder._note(body)
                prefix = "/janus"
                path = self.path[len(prefix) :] if self.path.startswith(prefix) else self.path
                answer = requests.post(
                    recorder.upstream + path,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silent
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/janus"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _note(self, raw: bytes) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            return
        body = payload.get("body") or {}
        for name, kind in (("admin_key", "Janus admin key"), ("secret", "room secret"), ("pin", "room pin")):
            if isinstance(body.get(name), str) and body[name]:
                self.seen.append((kind, body[name]))
        for token in body.get("allowed") or []:
            if isinstance(token, str) and token:
                self.seen.append(("media token", token))

    def start(self) -> JanusRecorder:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- Where credentials must not be -----------------------------------------------------


@dataclass
class Source:
    where: str  # e.g. "pg_dump, table django_session"
    blob: bytes
    moment: str = ""  # when a copy was taken ("" for logs: read at the end)


def _decoded_runs(blob: bytes, depth: int = 2) -> list[bytes]:
    """What base64 runs in `blob` decode to (and zlib inside them), `depth` levels down."""
    found: list[bytes] = []
    for match in _B64_RUN.finditer(blob):
        run = match.group().replace(b"+", b"-").replace(b"/", b"_")
        for start in range(4):  # a run may begin mid-quantum (e.g. after a "." or a quote)
            chunk = run[start:]
            try:
                raw = base64.urlsafe_b64decode(chunk + b"=" * (-len(chunk) % 4))
            except (binascii.Error, ValueError):
                continue
            found.append(raw)
            with contextlib.suppress(zlib.error):
                found.append(zlib.decompress(raw))
    if depth > 1 and found:
        found += _decoded_runs(b"\n".join(found), depth - 1)
    return found


def _context(blob: bytes, at: int, inventory: Inventory) -> str:
    """The line (a log's line, a dump's row) around `at`, masked whole before it is cut,
    so that no part of any credential is printed."""
    start, end = blob.rfind(b"\n", 0, at) + 1, blob.find(b"\n", at)
    line = inventory.masked(blob[start : end if end != -1 else len(blob)].decode("utf-8", "replace"))
    line = re.sub(r"\s+", " ", "".join(c if " " <= c <= "~" or c in "«»" else " " for c in line))
    first = max(line.find("«"), 0)
    return line[max(0, first - 80) : first + 140].strip()


@dataclass
class Finding:
    kind: str
    owner: str
    where: str
    moment: str
    context: str


def report(findings: list[Finding]) -> str:
    """One line per credential kind and place: whose, when, and one excerpt (credentials masked)."""
    grouped: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        grouped.setdefault((finding.kind, finding.where), []).append(finding)
    lines = []
    for (kind, where), found in sorted(grouped.items()):
        owners = ", ".join(sorted({f.owner for f in found}))
        moments = "; ".join(sorted({f.moment for f in found if f.moment}))
        lines.append(f"- {kind} [{owners}] in {where}" + (f" ({moments})" if moments else ""))
        lines.append(f"    {found[0].context}")
    return "\n".join(lines)


def search(inventory: Inventory, sources: list[Source]) -> list[Finding]:
    findings: list[Finding] = []
    for source in sources:
        decoded = b"\n".join(_decoded_runs(source.blob))
        for item in inventory.items:
            for form in item.forms:
                needle = form.encode()
                if (at := source.blob.find(needle)) != -1:
                    context = _context(source.blob, at, inventory)
                    where = inventory.masked(source.where)
                    findings.append(Finding(item.kind, item.owner, where, source.moment, context))
                    break
                if (at := decoded.find(needle)) != -1:
                    context = _context(decoded, at, inventory)
                    where = inventory.masked(f"{source.where} (base64-decoded)")
                    findings.append(Finding(item.kind, item.owner, where, source.moment, context))
                    break
    return findings


def pg_dump_sources(database_url: str) -> list[Source]:
    """`pg_dump --data-only` (plain text), one source per table's COPY block."""
    done = subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", "--no-privileges", "--dbname", database_url],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    sources: list[Source] = []
    table, rows = "(outside any table)", bytearray()
    for line in done.stdout.splitlines(keepends=True):
        if line.startswith(b"COPY "):
            if rows:
                sources.append(Source(f"pg_dump, table {table}", bytes(rows)))
            table, rows = line.split(b" ")[1].decode(), bytearray()
        else:
            rows += line
    if rows:
        sources.append(Source(f"pg_dump, table {table}", bytes(rows)))
    return sources


def redis_sources(port: int) -> list[Source]:
    """Every key name and value in every database of the Redis on `port`."""
    sources: list[Source] = []
    info = redis.Redis(host="127.0.0.1", port=port).info("keyspace")
    for db_name in info:
        client = redis.Redis(host="127.0.0.1", port=port, db=int(str(db_name).removeprefix("db")))
        for key in client.scan_iter(count=500):
            kind = client.type(key).decode()
            label = f"Redis db {db_name}"
            sources.append(Source(f"{label}, the key name {key!r}", key))
            value: Any
            if kind == "string":
                value = client.get(key) or b""
            elif kind == "hash":
                value = b"\n".join(k + b"=" + v for k, v in client.hgetall(key).items())
            elif kind == "list":
                value = b"\n".join(client.lrange(key, 0, -1))
            elif kind == "set":
                value = b"\n".join(client.smembers(key))
            elif kind == "zset":
                value = b"\n".join(m for m, _score in client.zrange(key, 0, -1, withscores=True))
            elif kind == "stream":
                value = repr(client.xrange(key)).encode()
            else:
                value = client.dump(key) or b""
            sources.append(Source(f"{label}, the {kind} value of key {key!r}", value))
    return sources


def log_source(name: str, path: Path) -> Source:
    return Source(f"{name} ({path.name})", path.read_bytes() if path.exists() else b"")
