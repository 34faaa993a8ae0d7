"""Mutation check of issue 21's protections: each protection is removed in turn (one
textual change to the app), the tests named for it are run, and they must fail.

    .venv/bin/python tools/mutation_check.py            # every mutation, on SQLite
    .venv/bin/python tools/mutation_check.py dial_in     # only those whose name has "dial_in"

A mutation whose tests pass is reported as SURVIVED and the run fails. The change is undone
after each run (also on Ctrl-C). Run it from a clean checkout: it edits the files in place.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "session_row_named_by_raw_key",
        "meetings/sessions.py",
        "    return keyed_digest(key, label=ID_LABEL, key=subkeys(ID_LABEL)[index])",
        "    return key",
        ("tests/test_session_keys.py",),
        "session rows and Redis key names hold a keyed digest of the cookie's key",
    ),
    Mutation(
        "sign_in_page_starts_a_session_on_get",
        "meetings/views/accounts.py",
        '@method_decorator(no_session_on_get, name="dispatch")',
        "",
        ("tests/test_session_keys.py",),
        "viewing the sign-in page starts no session",
    ),
    Mutation(
        "passcode_join_keeps_the_planted_key",
        "meetings/authentication.py",
        "    session.cycle_key()\n    lobby_secret_bind(session, entry_id, secret)",
        "    lobby_secret_bind(session, entry_id, secret)",
        ("tests/test_session_keys.py",),
        "a passcode join cycles the session key",
    ),
    Mutation(
        "welcome_route_not_scrubbed",
        "meetings/token_routes.py",
        '        ("accounts", "welcome"),\n',
        '        ("accounts", "welcome-not-this"),\n',
        ("tests/test_logging.py", "tests/test_nginx.py", "tests/test_server_logs.py"),
        "onboarding links scrubbed from every log (one list of token routes)",
    ),
    Mutation(
        "seed_stored_plain",
        "meetings/sealed_fields.py",
        '    for model, name, cls in ((TOTPDevice, "key", TOTPSeedField), (StaticToken, "token", BackupCodeField)):',
        '    for model, name, cls in ((StaticToken, "token", BackupCodeField),):',
        ("tests/test_mfa.py", "tests/test_sealing.py"),
        "TOTP seeds sealed at rest",
    ),
    Mutation(
        "backup_codes_stored_plain",
        "meetings/sealed_fields.py",
        '    for model, name, cls in ((TOTPDevice, "key", TOTPSeedField), (StaticToken, "token", BackupCodeField)):',
        '    for model, name, cls in ((TOTPDevice, "key", TOTPSeedField),):',
        ("tests/test_mfa.py", "tests/test_sealing.py"),
        "backup codes kept as keyed digests",
    ),
    Mutation(
        "recording_behind_the_rows_back_left_on",
        "meetings/services/media.py",
        "    if room.number in (backend.recording_rooms() if recording is None else recording):",
        "    if False:",
        (
            "tests/test_conference.py::test_a_recording_switched_on_with_the_room_secret_is_stopped_by_the_sync",
        ),
        "the sync reads Janus's recording state and stops what the row does not say",
    ),
    Mutation(
        "passcode_entry_ignores_participant_mfa",
        "meetings/policy/people.py",
        "    if level.require_participant_mfa:\n        # SECURITY: whatever allow_passcode_join says",
        "    if False:\n        # SECURITY: whatever allow_passcode_join says",
        ("tests/test_walkarounds.py", "tests/test_policy.py"),
        "passcode entry obeys require_participant_mfa",
    ),
    Mutation(
        "rank_edit_unchecked",
        "meetings/policy/meetings.py",
        "        if level.rank > other.rank and _strictly_looser(level, other):",
        "        if False:",
        ("tests/test_walkarounds.py", "tests/test_policy.py"),
        "a rank edit cannot order a looser level above a stricter one",
    ),
    Mutation(
        "lowering_by_rank_alone",
        "meetings/policy/meetings.py",
        "    return [name for name, looser in _LOOSER.items() if looser(current, target)]",
        "    return []",
        ("tests/test_policy.py",),
        "a level change is lowering when the target allows anything the current forbids",
    ),
    Mutation(
        "tightened_link_lifetime_ignored",
        "meetings/services/levels.py",
        "    links_shortened = _shorten_links(meeting=meeting, level=level, actor=actor)",
        "    links_shortened = 0",
        ("tests/test_walkarounds.py",),
        "a shorter max_link_lifetime_hours shortens links already sent",
    ),
    Mutation(
        "unbookable_level_leaves_meetings_open",
        "meetings/services/levels.py",
        "    if not level.bookable:\n        # SECURITY: a level that may no longer be held here",
        "    if False:\n        # SECURITY: a level that may no longer be held here",
        ("tests/test_walkarounds.py",),
        "bookable=false closes the level's meetings",
    ),
    Mutation(
        "running_meeting_unreachable_after_its_scheduled_end",
        "meetings/policy/people.py",
        "    return started_at is not None or not meeting_over(",
        "    return not meeting_over(",
        ("tests/test_walkarounds_life.py", "tests/test_policy.py"),
        "revocation, raising and tightening reach a meeting until it is actually ended",
    ),
    Mutation(
        "dial_in_code_stored_plain",
        "meetings/models/core.py",
        "    dial_in_code = DialInCodeField(max_length=100, blank=True)",
        "    dial_in_code = models.CharField(max_length=100, blank=True)",
        ("tests/test_sealing.py",),
        "dial-in codes sealed in meeting rows",
    ),
    Mutation(
        "admin_shows_seeds",
        "meetings/admin.py",
        "    if admin.site.is_registered(_device_model):  # django-otp's, registered before ours\n"
        "        admin.site.unregister(_device_model)\n"
        "    admin.site.register(_device_model, SecondFactorDeviceAdmin)",
        "    pass",
        ("tests/test_mfa.py::test_the_admin_shows_staff_no_seed_no_qr_code_and_no_backup_code",),
        "the admin shows staff no seed, QR code or backup code",
    ),
    Mutation(
        "cancelled_room_waits_for_the_sync",
        "meetings/services/lifecycle.py",
        "        meeting=meeting, invitations=selectors.active_invitations(meeting), reason=reason\n    )\n"
        "    media.media_room_close(meeting)",
        "        meeting=meeting, invitations=selectors.active_invitations(meeting), reason=reason\n    )",
        (
            "tests/test_conference.py::test_cancelling_or_ending_a_started_meeting_closes_its_room_and_pages_at_once",
            "tests/test_conference.py::test_a_cancelled_meetings_media_config_and_key_relay_go_even_while_janus_is_unreachable",
        ),
        "a cancelled meeting's room page and media config go at once",
    ),
    Mutation(
        "procfile_trusts_every_loopback_peer",
        "Procfile",
        "web1: ANTECHAMBER_TRUSTED_PROXIES=${NGINX_PROXY_BIND:-127.0.0.2} gunicorn",
        "web1: ANTECHAMBER_TRUSTED_PROXIES=127.0.0.1 FORWARDED_ALLOW_IPS=127.0.0.1 gunicorn",
        ("tests/test_nginx.py::test_the_procfile_layout_believes_x_real_ip_from_its_nginx_alone",),
        "the Procfile's web servers believe X-Real-IP from their nginx alone",
    ),
    Mutation(
        "link_token_kept_in_the_session_after_use",
        "meetings/views/participants.py",
        "drop=(PENDING_KEY,)",
        "drop=()",
        ("tests/test_session_keys.py::test_the_link_page_signs_in_with_the_token_in_no_url",),
        "the link page's sign-in keeps the token (sealed) only until the link is used",
    ),
    Mutation(
        "only_a_lost_redis_connection_is_a_503",
        "meetings/middleware.py",
        "CACHE_ERRORS = (RedisError,)",
        'CACHE_ERRORS = (__import__("redis").exceptions.ConnectionError,)',
        ("tests/test_limiter_faults.py",),
        "any Redis error is a 503, never a 500",
    ),
    Mutation(
        "sign_in_lockout_counted_in_redis",
        "scheduler/settings.py",
        'AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"',
        'AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler" if REDIS_URL else "axes.handlers.database.AxesDatabaseHandler"',
        ("tests/test_limiter_faults.py",),
        "the sign-in lockout counts where no eviction resets it",
    ),
)


def run(mutation: Mutation) -> tuple[str, float, str]:
    path = ROOT / mutation.path
    source = path.read_text()
    if source.count(mutation.old) != 1:
        return "NOT APPLIED", 0.0, f"{mutation.path}: the text to change is not there exactly once"
    tests = [t for t in mutation.tests if (ROOT / t.split("::")[0]).exists()]
    if not tests:
        return "NOT APPLIED", 0.0, "none of its tests exist"
    path.write_text(source.replace(mutation.old, mutation.new))
    started = time.monotonic()
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        result = subprocess.run(  # noqa: S603 - our own venv's pytest on our own test files
            [str(ROOT / ".venv/bin/pytest"), "-q", "-x", "-p", "no:cacheprovider", "--no-header", *tests],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        path.write_text(source)
    elapsed = time.monotonic() - started
    tail = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-200:]
    failed = re.search(r"FAILED (\S+)", result.stdout)
    if result.returncode == 0:
        return "SURVIVED", elapsed, tail
    return "killed", elapsed, failed.group(1) if failed else tail


def main(argv: list[str]) -> int:
    wanted = [m for m in MUTATIONS if not argv or any(a in m.name for a in argv)]
    survived = 0
    print("| mutation (protection removed) | result | test that failed |")
    print("| --- | --- | --- |")
    for mutation in wanted:
        outcome, elapsed, detail = run(mutation)
        survived += outcome != "killed"
        print(f"| `{mutation.name}`: {mutation.why} | {outcome} ({elapsed:.0f} s) | `{detail}` |", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
