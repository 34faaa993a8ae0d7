"""Pooled mail: a batch of outbox rows goes out over one SMTP connection, tasks are
published one per batch, and each row is still claimed on its own, so none is sent twice."""

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend

from meetings import emails
from meetings.models import OutboundMessage
from meetings.services import delivery, outbox
from tests.helpers import booking_body

pytestmark = pytest.mark.django_db


class CountingBackend(LocmemBackend):
    """Counts the connections made; with `fail_on`, the Nth message sent fails."""

    connections = 0
    messages = 0
    fail_on: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        CountingBackend.connections += 1

    def send_messages(self, messages):
        CountingBackend.messages += len(messages)
        if CountingBackend.fail_on == CountingBackend.messages:
            raise ConnectionResetError("the SMTP server went away")
        return super().send_messages(messages)


class CountingSmtpBackend(SmtpBackend):
    """Django's SMTP backend, counting the SMTP connections it actually opens."""

    opened = 0

    def open(self):
        created = super().open()
        if created:
            CountingSmtpBackend.opened += 1
        return created


@pytest.fixture
def counting(settings):
    settings.EMAIL_BACKEND = f"{__name__}.CountingBackend"
    CountingBackend.connections = CountingBackend.messages = 0
    CountingBackend.fail_on = None
    return CountingBackend


def _rows(count: int) -> list[int]:
    message = emails.Message(subject="Notice", text="Hello", html="", ics_method="", ics_text="")
    rows = [
        outbox.outbox_row(message=message, kind="notice", to_email=f"person{n}@example.org")
        for n in range(count)
    ]
    return [row.pk for row in OutboundMessage.objects.bulk_create(rows)]


def test_a_batch_goes_over_one_connection(counting):
    ids = _rows(25)
    results = delivery.outbox_send_batch(message_ids=ids)
    assert all(result.sent for result in results.values()) and len(results) == 25
    assert counting.connections == 1
    assert len(mail.outbox) == 25
    assert OutboundMessage.objects.filter(status="sent").count() == 25


def test_rows_claimed_elsewhere_are_skipped_and_nothing_is_sent_twice(counting):
    ids = _rows(6)
    OutboundMessage.objects.filter(pk=ids[2]).update(status="sending")  # another worker has it
    delivery.outbox_send(message_id=ids[4])  # already sent on its own
    mail.outbox.clear()
    first = delivery.outbox_send_batch(message_ids=ids)
    assert [first[i].sent for i in ids] == [True, True, False, True, False, True]
    again = delivery.outbox_send_batch(message_ids=ids + ids)  # the same IDs twice more
    assert not any(result.sent for result in again.values())
    assert sorted(m.to[0] for m in mail.outbox) == sorted(f"person{n}@example.org" for n in (0, 1, 3, 5))


def test_a_failure_mid_batch_retries_that_row_alone_on_a_new_connection(counting, settings):
    counting.fail_on = 2
    ids = _rows(4)
    results = delivery.outbox_send_batch(message_ids=ids)
    assert [results[i].sent for i in ids] == [True, False, True, True]
    assert results[ids[1]].retry_in == settings.ANTECHAMBER_OUTBOX_RETRY_BASE_SECONDS
    failed = OutboundMessage.objects.get(pk=ids[1])
    assert failed.status == "pending" and "went away" in failed.last_error
    assert counting.connections == 2  # the failed connection was not reused


def test_publishing_is_one_task_per_batch(settings, monkeypatch, django_capture_on_commit_callbacks):
    settings.ANTECHAMBER_OUTBOX_BATCH = 10
    published: list[tuple[str, tuple]] = []
    monkeypatch.setattr(outbox, "dispatch", lambda name, *args: published.append((name, args)))
    message = emails.Message(subject="Notice", text="Hello", html="", ics_method="", ics_text="")
    with django_capture_on_commit_callbacks(execute=True):
        created = outbox.outbox_write(
            [
                outbox.outbox_row(message=message, kind="notice", to_email=f"p{n}@example.org")
                for n in range(25)
            ]
        )
    assert [name for name, _args in published] == [outbox.SEND_BATCH_TASK] * 3
    assert [len(args[0]) for _name, args in published] == [10, 10, 5]
    assert [pk for _name, args in published for pk in args[0]] == [row.pk for row in created]


def test_a_booking_with_invitees_sends_them_over_one_smtp_connection(
    alice_api, mailbox, settings, tasks_in_process, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = f"{__name__}.CountingSmtpBackend"
    CountingSmtpBackend.opened = 0
    invitees = [f"guest{n}@example.org" for n in range(12)]
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post("/api/v1/meetings/", booking_body(invitees=invitees), format="json")
    assert response.status_code == 201, response.content
    received = mailbox.wait_for(12)
    assert sorted(m["To"] for m in received) == sorted(invitees)
    assert len({m["Message-ID"] for m in received}) == 12
    assert CountingSmtpBackend.opened == 1
    assert OutboundMessage.objects.filter(kind="invitation", status="sent").count() == 12


@pytest.mark.django_db(transaction=True)
def test_a_claim_whose_row_cannot_be_read_back_is_undone(monkeypatch, counting):
    # The database lost between the claim and reading the claimed row (a restart): the
    # claim must not commit alone, or the row sits "sending", unsent, for the stale-claim
    # timeout (ten minutes) while nobody sends it. The claim's UPDATE … RETURNING has run
    # when its rows are read into models; the fault comes there.
    from django.db import OperationalError

    [row_id] = _rows(1)

    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patched:
        patched.setattr(OutboundMessage, "from_db", lost)
        with pytest.raises(OperationalError):
            delivery.outbox_send(message_id=row_id)
    row = OutboundMessage.objects.get(pk=row_id)
    assert (row.status, row.attempts, row.claimed_at) == (OutboundMessage.Status.PENDING, 0, None)
    # The next flush sends it.
    assert delivery.outbox_send(message_id=row_id).sent
    assert counting.messages == 1


def test_a_claim_released_as_stale_mid_batch_is_not_sent_by_its_old_holder(counting, settings):
    # A batch slower than the stale-claim timeout: the periodic release hands its waiting
    # rows back, and another worker sends one of them. The first worker renews its claim
    # before each send (here every time: the timeout is 0), finds the rows gone, skips them.
    settings.ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS = 0
    ids = _rows(4)

    class OtherWorkerMeanwhile(CountingBackend):
        def send_messages(self, messages):
            sent = super().send_messages(messages)
            if CountingBackend.messages == 1:
                delivery.outbox_release_stale_claims()
                assert delivery.outbox_send(message_id=ids[2]).sent
            return sent

    settings.EMAIL_BACKEND = f"{__name__}.OtherWorkerMeanwhile"
    globals()["OtherWorkerMeanwhile"] = OtherWorkerMeanwhile
    results = delivery.outbox_send_batch(message_ids=ids)
    assert [results[i].sent for i in ids] == [True, False, False, False]
    assert sorted(m.to[0] for m in mail.outbox) == ["person0@example.org", "person2@example.org"]
    statuses = dict(OutboundMessage.objects.values_list("pk", "status"))
    assert [statuses[i] for i in ids] == ["sent", "pending", "sent", "pending"]
    # The rows given back go out with the next batch, once each.
    assert [r.sent for r in delivery.outbox_send_batch(message_ids=ids).values()] == [
        False,
        True,
        False,
        True,
    ]
    assert sorted(m.to[0] for m in mail.outbox) == [f"person{n}@example.org" for n in range(4)]
