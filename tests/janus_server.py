"""A real Janus process for the tests, started from the configuration in tests/janus/."""

import contextlib
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests import real_services as real

CONFIG_TEMPLATES = Path(__file__).resolve().parent / "janus"
JANUS = "/usr/bin/janus"
VIDEOROOM = Path("/usr/lib/x86_64-linux-gnu/janus/plugins/libjanus_videoroom.so")


def janus_available() -> bool:
    return (Path(JANUS).exists() or shutil.which("janus") is not None) and VIDEOROOM.exists()


@dataclass
class JanusServer:
    url: str
    admin_key: str
    workdir: Path  # Janus's working directory: where a recording would land
    process: real.Process

    def stop(self) -> None:
        self.process.stop()


def render_config(target: Path, *, port: int, ip: str, admin_key: str, ice_interface: str = "") -> None:
    """Copy tests/janus/*.jcfg into `target`, filling in what the test chose."""
    ice = f'ice_enforce_list = "{ice_interface}"' if ice_interface else ""
    values = {
        "@CONFIGS_FOLDER@": str(target),
        "@HTTP_PORT@": str(port),
        "@HTTP_IP@": ip,
        "@ADMIN_KEY@": admin_key,
        "@ICE_ENFORCE@": ice,
    }
    target.mkdir(parents=True, exist_ok=True)
    for template in CONFIG_TEMPLATES.glob("*.jcfg"):
        text = template.read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        (target / template.name).write_text(text)


def _answers(port: int, ip: str) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_janus(
    *, ip: str = "127.0.0.1", ice_interface: str = "", prefix: list[str] | None = None
) -> JanusServer:
    """Start `janus -F <private config dir>` on a free port; the caller stops it."""
    root = Path(tempfile.mkdtemp(prefix="antechamber-janus-"))
    config_dir, workdir = root / "conf", root / "work"
    workdir.mkdir()
    port = real.free_port()
    admin_key = secrets.token_urlsafe(24)
    render_config(config_dir, port=port, ip=ip, admin_key=admin_key, ice_interface=ice_interface)
    argv = [*(prefix or []), JANUS, "-F", str(config_dir), "-C", str(config_dir / "janus.jcfg")]
    argv += ["-H", str(workdir)]
    process = real.Process(f"janus-{port}", argv, {"PATH": "/usr/bin:/bin"})
    process.start()
    real.wait_until(
        lambda: _answers(port, ip) or process.process.poll() is not None, timeout=30, what="Janus to listen"
    )
    if process.process is None or process.process.poll() is not None:
        raise RuntimeError("Janus died:\n" + process.log_path.read_text()[-3000:])
    return JanusServer(url=f"http://{ip}:{port}/janus", admin_key=admin_key, workdir=workdir, process=process)


class JanusParticipant:
    """Talks to Janus's HTTP API as a browser would (no WebRTC): one session, one handle."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self.http = requests.Session()
        self.session_id = self._post("", {"janus": "create"})["data"]["id"]
        self.handle_id = self._post(
            f"/{self.session_id}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )["data"]["id"]

    def _post(self, path: str, payload: dict) -> dict:
        payload = {**payload, "transaction": secrets.token_hex(8)}
        answer = self.http.post(f"{self.url}{path}", json=payload, timeout=10).json()
        assert answer["janus"] in ("success", "ack"), answer
        return answer

    def request(self, body: dict) -> dict:
        """A synchronous VideoRoom request: returns plugindata.data (error_code included)."""
        answer = self._post(f"/{self.session_id}/{self.handle_id}", {"janus": "message", "body": body})
        return answer["plugindata"]["data"]

    def message(self, body: dict) -> dict:
        """An asynchronous one (join, configure): returns the plugin's event for it."""
        transaction = secrets.token_hex(8)
        answer = self.http.post(
            f"{self.url}/{self.session_id}/{self.handle_id}",
            json={"janus": "message", "body": body, "transaction": transaction},
            timeout=10,
        ).json()
        if answer["janus"] == "success":  # some "asynchronous" requests answer at once
            return answer["plugindata"]["data"]
        assert answer["janus"] == "ack", answer
        for _ in range(40):
            events = self.http.get(f"{self.url}/{self.session_id}?maxev=5", timeout=40).json()
            for event in events if isinstance(events, list) else [events]:
                if event.get("transaction") == transaction and event.get("janus") == "event":
                    return event["plugindata"]["data"]
        raise AssertionError(f"no answer from Janus to {body['request']}")

    def close(self) -> None:
        # The session may already be gone with its room.
        with contextlib.suppress(Exception):
            self._post(f"/{self.session_id}", {"janus": "destroy"})
        self.http.close()
