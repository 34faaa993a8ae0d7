"""Pure policy decisions, in two parts: meetings and levels (policy/meetings.py) and
people (policy/people.py). Callers use `from meetings import policy; policy.<name>`."""

from meetings.policy.meetings import *  # noqa: F403
from meetings.policy.meetings import __all__ as _meetings_all
from meetings.policy.people import *  # noqa: F403
from meetings.policy.people import __all__ as _people_all

__all__ = [*_meetings_all, *_people_all]
