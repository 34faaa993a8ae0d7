import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "If there is no user yet, create an admin with a random password and print it once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.exists():
            self.stdout.write("Users exist already: sign in with your account (or run createsuperuser).")
            return
        password = secrets.token_urlsafe(18)
        User.objects.create_superuser(
            username=options["username"], email=f"{options['username']}@localhost", password=password
        )
        line = "=" * 64
        self.stdout.write(
            f"{line}\nFirst run: an administrator was created.\n"
            f"  Sign in at {options['url']}/accounts/login/\n"
            f"  Username:  {options['username']}\n"
            f"  Password:  {password}\n"
            f"This password is shown once. The admin asks you to set up an authenticator app\n"
            f"(two-factor sign-in) on your first visit to {options['url']}/admin/.\n{line}"
        )
