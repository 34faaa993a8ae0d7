"""Every write, by sub-domain; each service is atomic and takes keyword-only arguments.

booking      meeting_book, meeting_update, meeting_cancel, meeting_rotate_passcode
levels       level_update (and carrying a tightening to its meetings)
invitations  invitations_create, invitation_resend, invitation_revoke, invitation_redeem
outbox       writing mail rows in the caller's transaction; queueing tasks by name
delivery     outbox_send, outbox_send_batch (claim rows 20 at a time, send many over one SMTP connection, record), outbox_release_stale_claims
lobby        lobby_enter, lobby_join_by_passcode, lobby_enter_by_invitation, admit/deny/remove
places       places_end_by_revocation, places_recheck (a revocation or a rising level ends places)
lifecycle    meeting_start, meeting_lock, meeting_unlock, meeting_end
media        media_room_prepare, media_room_sync (Janus matches the database)
e2ee         the key relay of E2EE rooms: public keys and wrapped keys, in the cache only
tokens       api_token_create, api_token_revoke
accounts     host_invite, host_password_set, host_profile_update
retention    retention_purge
locking      the one lock order (read it before taking a lock)
checks       refusals several services share (closed meeting, host second factor)

Services never import meetings.tasks: they queue tasks by name (outbox.dispatch).
The exceptions they raise live in meetings.errors.
"""
