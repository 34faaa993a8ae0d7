from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from meetings.audit import UNSEALED_LIMIT, verify_chain


class Command(BaseCommand):
    help = (
        "Check the audit log's hash chain. Exits 0 when it is whole; otherwise exits 1 "
        "naming the first row that was changed, removed around or inserted. Also reports "
        "the rows not yet sealed into the chain, and exits 1 if one has waited for more "
        "than a minute (the sealer, celery beat's audit-seal, is not running)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if not report.intact:
            raise CommandError(
                f"Audit chain broken at row id={report.bad_row_id}: {report.problem}. "
                f"{report.rows - 1} row(s) before it are intact."
            )
        waited = report.unsealed_for(timezone.now())
        if report.unsealed and waited > UNSEALED_LIMIT:
            raise CommandError(
                f"Audit chain intact: {report.rows} sealed row(s), but {report.unsealed} row(s) are not "
                f"sealed and the oldest (id={report.oldest_unsealed_id}) has waited "
                f"{waited.total_seconds():.0f}s (limit {UNSEALED_LIMIT.total_seconds():.0f}s): "
                "is celery beat (audit-seal) running?"
            )
        self.stdout.write(
            f"Audit chain intact: {report.rows} row(s). Head hash: {report.head}\n"
            f"Unsealed tail: {report.unsealed} row(s)"
            + (f", the oldest waiting {waited.total_seconds():.1f}s" if report.unsealed else "")
            + ".\nRecord the head hash somewhere else to detect a rewrite of the whole chain later."
        )
