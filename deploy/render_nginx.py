"""Render deploy/nginx-site.conf.template (and, with --prefix, a main nginx.conf to run
it without the system's nginx service).

    python deploy/render_nginx.py --listen 127.0.0.1:8000 --upstream 127.0.0.1:8001 \\
        --upstream 127.0.0.1:8002 --static-root var/static --prefix var/nginx
    nginx -p var/nginx -c nginx.conf -g 'daemon off;'

For the system nginx: `--site /etc/nginx/conf.d/antechamber.conf` writes only the site.
The app then needs ANTECHAMBER_TRUSTED_PROXIES=<the address nginx connects from>: on one
machine, give nginx an address of its own (`--proxy-bind 127.0.0.2`, as the Procfile does)
and trust that one alone, so that no other local process's X-Real-IP is believed.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx-site.conf.template"

# Run as a script from anywhere: the token routes live in the app (standard library only).
sys.path.insert(0, str(HERE.parent))
from meetings.token_routes import TOKEN_ROUTES, TokenRoute, head_pattern, token_pattern  # noqa: E402

TOKEN_MARK = "[token]"

# SECURITY: nginx's error lines quote the request line (a join link's path is a credential),
# for upstream failures and for limit_req refusals alike, so only "crit" and worse are kept.
MAIN = """# Rendered by deploy/render_nginx.py: nginx with everything under this prefix.
worker_processes @WORKERS@;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log crit;
@USER@
events {
    worker_connections 4096;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    client_body_temp_path @PREFIX@/client_body;
    proxy_temp_path @PREFIX@/proxy;
    fastcgi_temp_path @PREFIX@/fastcgi;
    uwsgi_temp_path @PREFIX@/uwsgi;
    scgi_temp_path @PREFIX@/scgi;

    include @PREFIX@/antechamber.conf;
}
"""


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise SystemExit(f"unfilled placeholders: {left}")
    return text


def _nginx_string(text: str) -> str:
    """A double-quoted nginx string that nginx's parser reads back as `text`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_maps(routes: tuple[TokenRoute, ...] = TOKEN_ROUTES) -> str:
    """nginx's access-log maps, from the app's list of token routes.

    SECURITY: a path with a token route anywhere in it is logged as that route's shape
    alone (nothing of the request's own path, which could hold a second token), and a
    query string with one anywhere (a `next=` value, raw or encoded) as ?[token].
    """
    path_lines, args_lines = [], []
    for route in routes:
        pattern = head_pattern(route) + token_pattern(route)
        shape = "/" + "/".join(route.prefix) + "/" + f"{TOKEN_MARK}/"
        path_lines.append(f"    {_nginx_string('~*^[^?]*?' + pattern)} {_nginx_string(shape)};")
        args_lines.append(f"    {_nginx_string('~*' + pattern)} {_nginx_string('?' + TOKEN_MARK)};")
    return "\n".join(
        [
            "map $request_uri $antechamber_loggable_path {",
            *path_lines,
            '    "~^(?P<path>[^?]*)" "$path";',
            "}",
            "map $args $antechamber_loggable_args {",
            '    "" "";',
            *args_lines,
            '    default "?$args";',
            "}",
        ]
    )


def _proxy_bind(address: str) -> str:
    """proxy_bind, refusing the address every local process connects from by default."""
    if not address:
        return "    # (no proxy_bind: nginx connects from its host's own address)"
    bound = ipaddress.ip_address(address)
    if str(bound) in {"127.0.0.1", "::1"}:
        # SECURITY: trusting it would believe X-Real-IP from every local process.
        raise SystemExit(f"--proxy-bind {bound}: choose an address of nginx's own (e.g. 127.0.0.2)")
    return f"    proxy_bind {bound};"


def render_site(
    *,
    listen: str,
    upstreams: list[str],
    static_root: str,
    access_log: str,
    trusted_proxies: list[str],
    join_rate: str,
    join_burst: int,
    max_body: str,
    balance: str = "least_conn",
    proxy_bind: str = "",
) -> str:
    real_ip = (
        "\n".join(f"    set_real_ip_from {cidr};" for cidr in trusted_proxies)
        + "\n    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;"
        if trusted_proxies
        else "    # (none: nginx faces the clients)"
    )
    return _fill(
        TEMPLATE.read_text(),
        {
            "LISTEN": listen,
            "UPSTREAM_SERVERS": "\n".join(f"    server {u} max_fails=0;" for u in upstreams),
            "STATIC_ROOT": str(Path(static_root).resolve()),
            "ACCESS_LOG": access_log,
            "REAL_IP": real_ip,
            "LOG_MAPS": log_maps(),
            # SECURITY: the one address the app believes X-Real-IP from, nginx's own.
            "PROXY_BIND": _proxy_bind(proxy_bind),
            "JOIN_RATE": join_rate,
            "JOIN_BURST": str(join_burst),
            "MAX_BODY": max_body,
            "BALANCE": f"    {balance};"
            if balance != "round_robin"
            else "    # round robin (nginx's default)",
        },
    )


def render(args: argparse.Namespace) -> Path:
    prefix = Path(args.prefix).resolve() if args.prefix else None
    access_log = args.access_log or (
        str(prefix / "access.log") if prefix else "/var/log/nginx/antechamber.log"
    )
    site = render_site(
        listen=args.listen,
        upstreams=args.upstream,
        static_root=args.static_root,
        access_log=access_log,
        trusted_proxies=args.trusted_proxy,
        join_rate=args.join_rate,
        join_burst=args.join_burst,
        max_body=args.max_body,
        balance=args.balance,
        proxy_bind=args.proxy_bind,
    )
    if args.site:
        Path(args.site).write_text(site)
        return Path(args.site)
    if prefix is None:
        raise SystemExit("give --prefix (a directory to run nginx in) or --site (a file to write)")
    for folder in ("", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    (prefix / "antechamber.conf").write_text(site)
    # As root, nginx's workers would drop to `nobody`, who may not read var/static.
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        _fill(MAIN, {"PREFIX": str(prefix), "WORKERS": str(args.workers), "USER": user})
    )
    return prefix / "nginx.conf"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", default="127.0.0.1:8000", help="address:port nginx listens on")
    parser.add_argument("--upstream", action="append", required=True, help="a gunicorn address:port (repeat)")
    parser.add_argument("--static-root", default="var/static", help="STATIC_ROOT (collectstatic's output)")
    parser.add_argument(
        "--trusted-proxy", action="append", default=[], help="a balancer in front of nginx (CIDR)"
    )
    parser.add_argument("--join-rate", default="5r/s", help="per client address, on the join endpoints")
    parser.add_argument(
        "--join-burst", type=int, default=20, help="requests over the rate let through at once"
    )
    parser.add_argument("--max-body", default="1m", help="client_max_body_size")
    parser.add_argument(
        "--balance",
        default="least_conn",
        choices=["least_conn", "round_robin"],
        help="how nginx picks a gunicorn server for each request",
    )
    parser.add_argument(
        "--proxy-bind",
        default="",
        help="the address nginx connects to gunicorn from (the app's only ANTECHAMBER_TRUSTED_PROXIES)",
    )
    parser.add_argument("--workers", default="auto", help="worker_processes")
    parser.add_argument("--access-log", default="", help="default: <prefix>/access.log")
    parser.add_argument(
        "--prefix", default="", help="write nginx.conf and the site here, to run nginx -p PREFIX"
    )
    parser.add_argument("--site", default="", help="write only the site file (for the system nginx)")
    print(render(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
