"""Pages, by audience: hosts.py (booking, the meeting, invitations, the lobby),
participants.py (one-time links, joining, the waiting room and the room) and
accounts.py (second factor, API tokens). Views parse, call one service, render."""
