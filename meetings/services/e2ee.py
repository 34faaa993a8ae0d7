"""The key relay of end-to-end encrypted media rooms: public keys in, wrapped keys through.

Every browser in an E2EE room makes an ECDH key pair (P-256, WebCrypto) when it joins and
publishes the public half here; each sender wraps its media key for every other member's
public key and posts the wrapped copies here; each member polls for what is addressed to
it. The browsers do all the cryptography (static/js/media.js, static/js/e2ee-worker.js).

SECURITY: nothing held here can decrypt anything. Public keys are public, and a wrapped
key opens only with its recipient's private key, which never leaves that browser (it is
made non-extractable). Both live in the cache (Redis in production) with a short lifetime,
never in the database, and are never logged. A member is someone the database says is in
the meeting now (the host, admitted entries): a denied or removed person's seat stops
answering at once, and the others see them gone and make new sender keys.

What the server could still do, and what shows it: it could hand out a public key of its
own instead of someone's (and unwrap and re-wrap their keys). Every browser shows a
security code made from the public keys it was given; a substituted key makes the codes
differ between people who read them aloud (docs/SECURITY.md).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from meetings import errors, policy
from meetings.models import ConferenceRoom, LobbyEntry, Meeting

# A member's public key lives this long without a poll renewing it: a browser that
# vanishes without saying so drops out of the room's keying (and its security code).
PUBLIC_KEY_TTL_SECONDS = 20
# Wrapped keys outlive a reconnection, not a meeting.
WRAPPED_KEY_TTL_SECONDS = 6 * 3600
# An uncompressed P-256 point; a 16-byte base key under AES-GCM (+16 tag); a 12-byte IV.
PUBLIC_KEY_BYTES = 65
WRAPPED_KEY_BYTES = 32
IV_BYTES = 12
MAX_KEY_ID = 2**48
MAX_RECIPIENTS = 200


@dataclass(frozen=True)
class Seat:
    """One member's place in an open E2EE room: whose keys a request may read and write."""

    room_id: int
    meeting_id: int
    feed: int
    host_feed: int


def _room_of(meeting: Meeting) -> ConferenceRoom | None:
    # SECURITY: a cancelled or ended meeting's relay closes with its row, not at the sync.
    return (
        ConferenceRoom.objects.filter(
            meeting_id=meeting.pk, closed_at=None, e2ee=True, meeting__ended_at=None
        )
        .exclude(opened_at=None)
        .exclude(meeting__status=Meeting.Status.CANCELLED)
        .first()
    )


def seat_for_entry(entry: LobbyEntry) -> Seat | None:
    """The seat of an admitted participant (the caller checked the session holds the entry)."""
    if entry.status != LobbyEntry.Status.ADMITTED or entry.media_feed_id is None:
        return None
    meeting = entry.meeting
    if policy.entrant_refusal(meeting.classification, entry) is not None:
        # SECURITY: the level as it is now decides, as at the door (policy.entry_refusal).
        return None
    if not meeting.is_started:
        return None
    room = _room_of(meeting)
    if room is None:
        return None
    return Seat(room_id=room.pk, meeting_id=meeting.pk, feed=entry.media_feed_id, host_feed=room.host_feed_id)


def seat_for_host(meeting: Meeting) -> Seat | None:
    """The host's seat (the caller checked that this is the meeting's host)."""
    if not meeting.is_started:
        return None
    room = _room_of(meeting)
    if room is None:
        return None
    return Seat(room_id=room.pk, meeting_id=meeting.pk, feed=room.host_feed_id, host_feed=room.host_feed_id)


def _public_key_name(room_id: int, feed: int) -> str:
    return f"antechamber:e2ee:{room_id}:public:{feed}"


def _wrapped_name(room_id: int, to_feed: int, from_feed: int) -> str:
    return f"antechamber:e2ee:{room_id}:wrapped:{to_feed}:{from_feed}"


def _decode(value: Any, size: int, field: str) -> str:
    """Checks a base64 value decodes to `size` bytes; returns it as sent (it is stored so)."""
    if not isinstance(value, str) or len(value) > 4 * size:
        raise errors.refused("Expected base64 text.", field=field)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.refused("Expected base64 text.", field=field) from None
    if len(raw) != size:
        raise errors.refused(f"Expected {size} bytes.", field=field)
    return value


def _members(seat: Seat) -> dict[int, str]:
    """Who is in the meeting now, by publisher ID, with the name others see."""
    names: dict[int, str] = {
        feed: name
        for feed, name in LobbyEntry.objects.filter(
            meeting_id=seat.meeting_id, status=LobbyEntry.Status.ADMITTED
        ).values_list("media_feed_id", "display_name")
        if feed is not None
    }
    meeting = Meeting.objects.select_related("host").get(pk=seat.meeting_id)
    host = meeting.host
    names[seat.host_feed] = f"{host.get_full_name() or host.get_username()} (host)"
    return names


def e2ee_key_publish(*, seat: Seat, public_key: Any) -> None:
    """This member's public key (raw P-256 point, base64), replacing any earlier one."""
    value = _decode(public_key, PUBLIC_KEY_BYTES, "public_key")
    if not base64.b64decode(value).startswith(b"\x04"):
        raise errors.refused("Expected an uncompressed P-256 point.", field="public_key")
    cache.set(_public_key_name(seat.room_id, seat.feed), value, PUBLIC_KEY_TTL_SECONDS)


def e2ee_key_withdraw(*, seat: Seat) -> None:
    """This member leaves the media: the others stop wrapping for it and make new keys."""
    cache.delete(_public_key_name(seat.room_id, seat.feed))


def e2ee_wrapped_keys_post(*, seat: Seat, key_id: Any, keys: Any) -> int:
    """This member's sender key `key_id`, wrapped for each recipient; returns how many kept.

    Copies for someone who is not a member (any more) are dropped, never relayed.
    """
    if not isinstance(key_id, int) or isinstance(key_id, bool) or not 0 <= key_id < MAX_KEY_ID:
        raise errors.refused(f"A key ID is an integer from 0 to {MAX_KEY_ID - 1}.", field="key_id")
    if not isinstance(keys, list) or len(keys) > MAX_RECIPIENTS:
        raise errors.refused(f"A list of at most {MAX_RECIPIENTS} wrapped keys.", field="keys")
    members = _members(seat)
    stored = 0
    for item in keys:
        if not isinstance(item, dict) or set(item) != {"to", "iv", "wrapped"}:
            raise errors.refused("Each wrapped key is {to, iv, wrapped}.", field="keys")
        to = item["to"]
        if not isinstance(to, int) or isinstance(to, bool):
            raise errors.refused("`to` is a publisher ID.", field="keys")
        iv = _decode(item["iv"], IV_BYTES, "keys")
        wrapped = _decode(item["wrapped"], WRAPPED_KEY_BYTES, "keys")
        if to not in members or to == seat.feed:
            continue
        cache.set(
            _wrapped_name(seat.room_id, to, seat.feed),
            {"key_id": key_id, "iv": iv, "wrapped": wrapped},
            WRAPPED_KEY_TTL_SECONDS,
        )
        stored += 1
    return stored


def e2ee_room_keys(*, seat: Seat) -> dict[str, Any]:
    """What this member needs: every member with a published public key, and the newest
    sender key each of them wrapped for this member. Renews this member's own public key.
    """
    members = _members(seat)
    if seat.feed not in members:
        raise errors.NotFound("Not in this meeting.")
    public = cache.get_many([_public_key_name(seat.room_id, feed) for feed in members])
    mine = _public_key_name(seat.room_id, seat.feed)
    if mine in public:
        cache.touch(mine, PUBLIC_KEY_TTL_SECONDS)
    present = [feed for feed in members if _public_key_name(seat.room_id, feed) in public]
    wrapped = cache.get_many([_wrapped_name(seat.room_id, seat.feed, feed) for feed in present])
    return {
        "me": seat.feed,
        "members": [
            {
                "feed": feed,
                "display": members[feed],
                "public_key": public[_public_key_name(seat.room_id, feed)],
            }
            for feed in sorted(present)
        ],
        "wrapped": [
            {"from": feed, **wrapped[_wrapped_name(seat.room_id, seat.feed, feed)]}
            for feed in sorted(present)
            if _wrapped_name(seat.room_id, seat.feed, feed) in wrapped
        ],
    }
