from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from meetings.services import tokens


class Command(BaseCommand):
    help = "Issue an API token for USERNAME (operator use). The token is the last line of output."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--label", default="created by create_api_token")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["username"]})
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {options['username']!r}.") from exc
        token, key = tokens.api_token_create(user=user, label=options["label"])
        self.stdout.write(f"Token {token.prefix}… created for {user.get_username()}. It is shown once:")
        self.stdout.write(key)
