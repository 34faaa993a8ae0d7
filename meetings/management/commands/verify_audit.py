from typing import Any

from django.core.management.base import BaseCommand, CommandError

from meetings.audit import verify_chain


class Command(BaseCommand):
    help = (
        "Check the audit log's hash chain. Exits 0 when it is whole; otherwise exits 1 "
        "naming the first row that was changed, removed around or inserted."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if not report.intact:
            raise CommandError(
                f"Audit chain broken at row id={report.bad_row_id}: {report.problem}. "
                f"{report.rows - 1} row(s) before it are intact."
            )
        self.stdout.write(
            f"Audit chain intact: {report.rows} row(s). Head hash: {report.head}\n"
            "Record the head hash somewhere else to detect a rewrite of the whole chain later."
        )
