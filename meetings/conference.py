"""The conference (media) backend: the one place that knows a media server exists.

Services call `backend()` and the operations below; nothing else in the app talks
to the media server. With JANUS_URL unset the null backend answers, and meeting rooms
say that media is not configured.

The Janus implementation speaks the Janus HTTP API to the VideoRoom plugin: one
short-lived Janus session per operation, so nothing here has to keep a session alive.

SECURITY: a room's secret and pin, and every media token (the host's and each admitted
person's), are derived here (HMAC under a key that is not in the database, one label per
purpose) from the room number and the seat; no row holds one, so a dump of the database
lets no one control or join a room. The media server needs the raw values, so they are
computed whenever it or a browser is told them.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from django.conf import settings

from meetings import sealing

# VideoRoom error codes this module treats as "already so" (janus_videoroom.c).
NO_SUCH_ROOM = 426
ROOM_EXISTS = 427
NO_SUCH_FEED = 428
UNAUTHORIZED = 433  # a wrong room secret

# Janus numbers travel through JavaScript: stay within 2**53 so the page gets them exact.
_MAX_JS_INT = 2**52


class ConferenceError(Exception):
    """The media server refused or could not be reached. `code` is Janus's, when it said one."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Room:
    """What the backend needs to control one room. `secret` and `pin` never reach a URL."""

    number: int
    secret: str
    pin: str
    record: bool = False
    description: str = ""
    # End-to-end encrypted: Janus refuses any publisher that does not say it encrypts.
    e2ee: bool = False


def new_room_number() -> int:
    # SECURITY: random, not sequential, so one room number says nothing about another.
    return secrets.randbelow(_MAX_JS_INT) + 1


def new_feed_id() -> int:
    return secrets.randbelow(_MAX_JS_INT) + 1


_ROOM_SECRET = b"antechamber janus room secret v1"
_ROOM_PIN = b"antechamber janus room pin v1"
_MEDIA_TOKEN = b"antechamber janus media token v1"
_HOST_TOKEN = b"antechamber janus host token v1"


def room_secret(number: int) -> str:
    """Controls the room on the media server (allowed list, kick, recording, destroy)."""
    return sealing.keyed_digest(str(number), label=_ROOM_SECRET)


def former_room_secrets(number: int) -> list[str]:
    """The room's secret under each fallback key: what it was before a key change."""
    return [
        sealing.keyed_digest(str(number), label=_ROOM_SECRET, key=key)
        for key in sealing.subkeys(_ROOM_SECRET)[1:]
    ]


def room_pin(number: int) -> str:
    """Needed to join the room; goes only to admitted people's room pages."""
    return sealing.keyed_digest(str(number), label=_ROOM_PIN)


def media_token(number: int, *, entry_id: int, feed_id: int) -> str:
    """One admitted person's token on the room's allowed list.

    SECURITY: the publisher ID is drawn afresh at every admission, so a place issued
    again gets a new token and the old one (taken off the list) never comes back.
    """
    return sealing.keyed_digest(f"{number}:{entry_id}:{feed_id}", label=_MEDIA_TOKEN)


def host_token(number: int, *, feed_id: int) -> str:
    return sealing.keyed_digest(f"{number}:{feed_id}", label=_HOST_TOKEN)


class ConferenceBackend(Protocol):
    configured: bool

    def create_room(self, room: Room) -> None: ...

    def admit_participant(self, room: Room, token: str) -> str: ...

    def remove_participant(self, room: Room, token: str, feed_id: int | None) -> None: ...

    def participants(self, room: Room) -> set[int]: ...

    def recording_rooms(self) -> set[int]: ...

    def stop_recording(self, room: Room) -> None: ...

    def end_room(self, room: Room) -> None: ...


class NullBackend:
    """No media server: every operation succeeds and does nothing."""

    configured = False

    def create_room(self, room: Room) -> None:
        return None

    def admit_participant(self, room: Room, token: str) -> str:
        return token

    def remove_participant(self, room: Room, token: str, feed_id: int | None) -> None:
        return None

    def participants(self, room: Room) -> set[int]:
        return set()

    def recording_rooms(self) -> set[int]:
        return set()

    def stop_recording(self, room: Room) -> None:
        return None

    def end_room(self, room: Room) -> None:
        return None


class JanusBackend:
    """Janus VideoRoom over the Janus HTTP API (plain requests, every call with a timeout)."""

    configured = True

    def __init__(self, url: str, admin_key: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.admin_key = admin_key
        self.timeout = timeout

    # -- the operations ----------------------------------------------------------------

    def create_room(self, room: Room) -> None:
        body = {
            "request": "create",
            "admin_key": self.admin_key,
            "room": room.number,
            "description": room.description[:100] or "meeting",
            # SECURITY: not listed to anyone; managed only with the secret; joined
            # only with the pin AND a token Antechamber added for one admitted person.
            "is_private": True,
            "secret": room.secret,
            "pin": room.pin,
            "allowed": [],
            # Subscribing needs the private_id of a publisher in this room, so no one
            # can watch without having joined (with a token) themselves.
            "require_pvtid": True,
            # SECURITY: recording on only where policy allows; and only the room secret
            # (never a participant) can change it later.
            "record": room.record,
            "lock_record": True,
            "permanent": False,
            "publishers": 50,
            "audiocodec": "opus",
            "videocodec": "vp8",
            "notify_joining": True,
            # SECURITY: a publisher whose offer does not say its media is end-to-end
            # encrypted is refused, so no browser can send plain media into this room.
            "require_e2ee": room.e2ee,
        }
        try:
            self._videoroom(body)
        except ConferenceError as exc:
            if exc.code != ROOM_EXISTS:
                raise
        # A fresh room's allowed list is enforced only once enabled; it starts empty.
        self._videoroom(
            {
                "request": "allowed",
                "secret": room.secret,
                "room": room.number,
                "action": "enable",
                "allowed": [],
            }
        )

    def admit_participant(self, room: Room, token: str) -> str:
        self._videoroom(
            {
                "request": "allowed",
                "secret": room.secret,
                "room": room.number,
                "action": "add",
                "allowed": [token],
            }
        )
        return token

    def remove_participant(self, room: Room, token: str, feed_id: int | None) -> None:
        """Take the token away first (so no rejoin), then kick: a kick alone is not a ban."""
        if token:
            self._videoroom(
                {
                    "request": "allowed",
                    "secret": room.secret,
                    "room": room.number,
                    "action": "remove",
                    "allowed": [token],
                }
            )
        if feed_id is not None:
            self.kick(room, feed_id)

    def kick(self, room: Room, feed_id: int) -> None:
        try:
            self._videoroom({"request": "kick", "secret": room.secret, "room": room.number, "id": feed_id})
        except ConferenceError as exc:
            if exc.code != NO_SUCH_FEED:
                raise

    def participants(self, room: Room) -> set[int]:
        data = self._videoroom({"request": "listparticipants", "room": room.number, "secret": room.secret})
        return {int(p["id"]) for p in data.get("participants", [])}

    def recording_rooms(self) -> set[int]:
        """The rooms the media server records now, whatever the rows say.

        SECURITY: anyone holding a room secret can switch recording on (lock_record
        only keeps participants from doing it), so the sync asks the server rather than
        trusting the row. `list` with the admin_key is the one VideoRoom request that
        shows a private room's `record` (Janus 1.1 has no per-room info request), so
        one answer serves every room a periodic sync visits.
        """
        data = self._videoroom({"request": "list", "admin_key": self.admin_key})
        return {int(r["room"]) for r in data.get("list", []) if r.get("record")}

    def stop_recording(self, room: Room) -> None:
        """A tightened level or a host's change: recording stops (never starts) mid-meeting."""
        self._videoroom(
            {"request": "enable_recording", "secret": room.secret, "room": room.number, "record": False}
        )

    def end_room(self, room: Room) -> None:
        try:
            self._videoroom(
                {"request": "destroy", "secret": room.secret, "room": room.number, "permanent": False}
            )
        except ConferenceError as exc:
            if exc.code != NO_SUCH_ROOM:
                raise

    # -- the Janus HTTP API ------------------------------------------------------------

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        payload = {**payload, "transaction": secrets.token_hex(8)}
        try:
            response = requests.post(f"{self.url}{path}", json=payload, timeout=self.timeout)
            response.raise_for_status()
            answer: dict[str, Any] = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ConferenceError(f"media server unreachable: {type(exc).__name__}") from exc
        if answer.get("janus") not in ("success", "ack"):
            error = answer.get("error") or {}
            raise ConferenceError(f"media server: {error.get('reason', 'error')}", error.get("code"))
        return answer

    def _videoroom(self, body: dict[str, Any]) -> dict[str, Any]:
        """One request to the VideoRoom plugin in a session of its own.

        SECURITY: Janus answers plugin refusals inside a "success" envelope, with
        plugindata.data.error_code set; both are checked, or a refused request would
        look as if it had worked.
        """
        session = self._post("", {"janus": "create"})["data"]["id"]
        try:
            handle = self._post(f"/{session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"})[
                "data"
            ]["id"]
            answer = self._post(f"/{session}/{handle}", {"janus": "message", "body": body})
        finally:
            # If this fails the session times out on its own.
            with contextlib.suppress(ConferenceError):
                self._post(f"/{session}", {"janus": "destroy"})
        data: dict[str, Any] = (answer.get("plugindata") or {}).get("data") or {}
        if "error_code" in data or (data.get("videoroom") == "event" and "error" in data):
            raise ConferenceError(
                f"media server refused {body['request']}: {data.get('error')}", data.get("error_code")
            )
        return data


def backend() -> ConferenceBackend:
    """The configured backend, read from settings at call time (tests override them)."""
    if not settings.JANUS_URL:
        return NullBackend()
    return JanusBackend(
        settings.JANUS_URL, settings.JANUS_ADMIN_KEY, settings.ANTECHAMBER_JANUS_TIMEOUT_SECONDS
    )


def browser_config(*, room: Room, token: str, feed_id: int, display: str) -> dict[str, Any]:
    """What one participant's page needs to join: rendered into the page body, never a URL.

    SECURITY: the pin and the person's own token go to an admitted person's page (the
    browser must send them to join); the room `secret` and the admin key never do.
    """
    return {
        "server": settings.ANTECHAMBER_JANUS_BROWSER_URL,
        "room": room.number,
        "pin": room.pin,
        "token": token,
        "feed": feed_id,
        "display": display,
        "iceServers": settings.ANTECHAMBER_ICE_SERVERS,
        "e2ee": room.e2ee,
    }
