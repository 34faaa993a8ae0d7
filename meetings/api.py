"""REST API views: parse with an input serializer, call one service, answer."""

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from meetings import selectors
from meetings.api_errors import responses
from meetings.authentication import (
    client_address,
    has_second_factor,
    lobby_secret_bind_after_join,
    session_key_for,
    signed_in_user,
)
from meetings.middleware import JOIN_HEADERS
from meetings.models import ClassificationLevel, Invitation, Meeting
from meetings.schema import NoCredentialsSchema
from meetings.serializers import (
    AdmittedCountOutput,
    ErrorOutput,
    InvitationOutput,
    InvitationsCreateInput,
    JoinedOutput,
    JoinInput,
    LevelOutput,
    LevelUpdateInput,
    LobbyEntryOutput,
    MeetingBookInput,
    MeetingLevelInput,
    MeetingOutput,
    MeetingUpdateInput,
    MeetingWithPasscodeOutput,
    PasscodeOutput,
)
from meetings.services import booking, invitations, levels, lifecycle, lobby


class IsStaffWithSecondFactor(permissions.BasePermission):
    message = "Only staff who passed a second factor may change classification levels."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user.is_staff and has_second_factor(request))


def _host_meeting(request: Request, meeting_id: str) -> Meeting:
    return selectors.meeting_for_host_or_404(request.user, meeting_id)


class LevelListApi(APIView):
    @extend_schema(responses=responses(LevelOutput(many=True)))
    def get(self, request: Request) -> Response:
        return Response(LevelOutput(selectors.levels(), many=True).data)


class LevelDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaffWithSecondFactor]

    def _level(self, code: str) -> ClassificationLevel:
        level = selectors.level_by_code(code)
        if level is None:
            raise Http404("No such classification level.")
        return level

    @extend_schema(responses=responses(LevelOutput, 404))
    def get(self, request: Request, code: str) -> Response:
        return Response(LevelOutput(self._level(code)).data)

    @extend_schema(request=LevelUpdateInput, responses=responses(LevelOutput, 400, 403, 404, 415))
    def patch(self, request: Request, code: str) -> Response:
        level = self._level(code)
        serializer = LevelUpdateInput(data=request.data, context={"level": level})
        serializer.is_valid(raise_exception=True)
        level, _touched = levels.level_update(
            level=level, actor=signed_in_user(request), changes=dict(serializer.validated_data)
        )
        return Response(LevelOutput(level).data)


class MeetingListApi(APIView):
    @extend_schema(responses=responses(MeetingOutput(many=True)))
    def get(self, request: Request) -> Response:
        return Response(MeetingOutput(selectors.meetings_for_host(request.user), many=True).data)

    @extend_schema(
        request=MeetingBookInput, responses=responses(MeetingWithPasscodeOutput, 400, 403, 415, ok_status=201)
    )
    def post(self, request: Request) -> Response:
        serializer = MeetingBookInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        booked = booking.meeting_book(
            host=signed_in_user(request),
            title=data["title"],
            starts_at=data["starts_at"],
            duration_minutes=data["duration_minutes"],
            timezone_name=data["timezone"],
            classification=data["classification"],
            cloud_recording=data["cloud_recording"],
            dial_in=data["dial_in"],
            waiting_room=data["waiting_room"],
            e2ee=data.get("e2ee"),
            invitees=data["invitees"],
            host_has_second_factor=has_second_factor(request),
        )
        output = MeetingWithPasscodeOutput(booked.meeting).data
        output["passcode"] = booked.passcode
        return Response(output, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class MeetingDetailApi(APIView):
    @extend_schema(responses=responses(MeetingOutput, 404))
    def get(self, request: Request, meeting_id: str) -> Response:
        return Response(MeetingOutput(_host_meeting(request, meeting_id)).data)

    @extend_schema(request=MeetingUpdateInput, responses=responses(MeetingOutput, 400, 403, 404, 409, 415))
    def patch(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        serializer = MeetingUpdateInput(data=request.data, context={"meeting": meeting})
        serializer.is_valid(raise_exception=True)
        updated = booking.meeting_update(
            meeting=meeting,
            actor=signed_in_user(request),
            changes=dict(serializer.validated_data),
            host_has_second_factor=has_second_factor(request),
        )
        output = MeetingOutput(updated.meeting).data
        if updated.passcode is not None:
            # The new level needed a stronger passcode: this is the one time it is shown.
            output["passcode"] = updated.passcode
        return Response(output, headers={"Cache-Control": "no-store"})


class MeetingLevelApi(APIView):
    """Policy admins (staff with a second factor) raise or lower any meeting's level.

    Hosts raise their own meetings' level with PATCH; lowering (declassifying) is only
    here, or a staff host's own PATCH: booking.meeting_update refuses it otherwise.
    """

    permission_classes = [permissions.IsAuthenticated, IsStaffWithSecondFactor]

    @extend_schema(request=MeetingLevelInput, responses=responses(MeetingOutput, 400, 403, 404, 409, 415))
    def post(self, request: Request, meeting_id: str) -> Response:
        meeting = selectors.meeting_for_staff(meeting_id)
        if meeting is None:
            raise Http404("No such meeting.")
        serializer = MeetingLevelInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = booking.meeting_update(
            meeting=meeting,
            actor=signed_in_user(request),
            changes={"classification": serializer.validated_data["classification"]},
            host_has_second_factor=has_second_factor(request),
        )
        output = MeetingOutput(updated.meeting).data
        if updated.passcode is not None:
            output["passcode"] = updated.passcode
        return Response(output, headers={"Cache-Control": "no-store"})


class MeetingCancelApi(APIView):
    @extend_schema(request=None, responses=responses(MeetingOutput, 403, 404, 409))
    def post(self, request: Request, meeting_id: str) -> Response:
        meeting = booking.meeting_cancel(
            meeting=_host_meeting(request, meeting_id),
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
        return Response(MeetingOutput(meeting).data)


class MeetingPasscodeApi(APIView):
    @extend_schema(request=None, responses=responses(PasscodeOutput, 403, 404, 409))
    def post(self, request: Request, meeting_id: str) -> Response:
        passcode = booking.meeting_rotate_passcode(
            meeting=_host_meeting(request, meeting_id),
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
        return Response({"passcode": passcode}, headers={"Cache-Control": "no-store"})


class MeetingInvitationsApi(APIView):
    @extend_schema(responses=responses(InvitationOutput(many=True), 404))
    def get(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        invitations = selectors.invitations_for_meeting(meeting)
        return Response(InvitationOutput(invitations, many=True, context={"meeting": meeting}).data)

    @extend_schema(
        request=InvitationsCreateInput,
        responses=responses(InvitationOutput(many=True), 400, 403, 404, 409, 415, ok_status=201),
    )
    def post(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        serializer = InvitationsCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = invitations.invitations_create(
            meeting=meeting,
            actor=signed_in_user(request),
            emails_to_invite=serializer.validated_data["emails"],
            host_has_second_factor=has_second_factor(request),
        )
        rows = selectors.invitations_for_meeting(meeting).filter(pk__in=[i.pk for i in created])
        return Response(
            InvitationOutput(rows, many=True, context={"meeting": meeting}).data,
            status=status.HTTP_201_CREATED,
        )


def _host_invitation(request: Request, meeting_id: str, invitation_id: str) -> Invitation:
    invitation = selectors.invitation_for_host(_host_meeting(request, meeting_id), invitation_id)
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


class InvitationResendApi(APIView):
    @extend_schema(request=None, responses=responses(InvitationOutput, 400, 403, 404, 409))
    def post(self, request: Request, meeting_id: str, invitation_id: str) -> Response:
        invitation = invitations.invitation_resend(
            invitation=_host_invitation(request, meeting_id, invitation_id),
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
        row = selectors.invitations_for_meeting(invitation.meeting).get(pk=invitation.pk)
        return Response(InvitationOutput(row, context={"meeting": invitation.meeting}).data)


class InvitationRevokeApi(APIView):
    @extend_schema(request=None, responses=responses(InvitationOutput, 400, 403, 404, 409))
    def post(self, request: Request, meeting_id: str, invitation_id: str) -> Response:
        invitation = invitations.invitation_revoke(
            invitation=_host_invitation(request, meeting_id, invitation_id),
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
        row = selectors.invitations_for_meeting(invitation.meeting).get(pk=invitation.pk)
        return Response(InvitationOutput(row, context={"meeting": invitation.meeting}).data)


# --- Joining, the lobby, the lifecycle ----------------------------------------------


class JoinApi(APIView):
    permission_classes = [permissions.AllowAny]
    schema = NoCredentialsSchema()

    @extend_schema(
        request=JoinInput,
        responses={
            **responses(JoinedOutput, 400, 409, 415, 429, ok_status=201),
            401: OpenApiResponse(
                ErrorOutput, description="Credentials were sent and are wrong (none are needed)"
            ),
            403: OpenApiResponse(
                ErrorOutput, description="Unknown meeting ID or wrong passcode (one answer for both)"
            ),
            503: OpenApiResponse(ErrorOutput, description="The limiter is down: no passcode is checked"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = JoinInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = request.user if request.user.is_authenticated else None
        # SECURITY: join answers hold a meeting's state; no cache may keep them, and the
        # join page's URL must not leak to any site it links to (JOIN_HEADERS, also on
        # refusals: see exception_handler).
        entered = lobby.lobby_join_by_passcode(
            raw_meeting_id=data["meeting_id"],
            passcode=data["passcode"],
            display_name=data["display_name"],
            user=user,
            client_address=client_address(request),
            client_session=session_key_for(request),
        )
        # SECURITY: under a new session key (session fixation).
        lobby_secret_bind_after_join(request.session, entered.entry.pk, entered.secret)
        meeting = entered.entry.meeting
        output = {
            "entry": LobbyEntryOutput(entered.entry).data,
            "meeting_title": meeting.title,
            "classification_name": meeting.classification.name,
            "waiting_url": reverse("meetings:join_waiting", kwargs={"entry_id": entered.entry.pk}),
            "status_url": reverse("meetings:join_status", kwargs={"entry_id": entered.entry.pk}),
        }
        return Response(output, status=status.HTTP_201_CREATED, headers=JOIN_HEADERS)


class LobbyApi(APIView):
    @extend_schema(responses=responses(LobbyEntryOutput(many=True), 404))
    def get(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        return Response(list(selectors.lobby_for_host(meeting)), headers={"Cache-Control": "no-store"})


class LobbyDecisionApi(APIView):
    decision = "admit"

    @extend_schema(request=None, responses=responses(LobbyEntryOutput, 403, 404, 409))
    def post(self, request: Request, meeting_id: str, entry_id: int) -> Response:
        meeting = _host_meeting(request, meeting_id)
        decide = {
            "admit": lobby.lobby_admit,
            "deny": lobby.lobby_deny,
            "remove": lobby.lobby_remove,
        }[self.decision]
        entry = decide(
            meeting=meeting,
            entry_id=entry_id,
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
        return Response(LobbyEntryOutput(entry).data)


class LobbyAdmitAllApi(APIView):
    @extend_schema(request=None, responses=responses(AdmittedCountOutput, 403, 404, 409))
    def post(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        admitted = lobby.lobby_admit_all(
            meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request)
        )
        return Response({"admitted": admitted})


class MeetingLifecycleApi(APIView):
    action = "start"

    @extend_schema(request=None, responses=responses(MeetingOutput, 403, 404, 409))
    def post(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        act = {
            "start": lifecycle.meeting_start,
            "lock": lifecycle.meeting_lock,
            "unlock": lifecycle.meeting_unlock,
            "end": lifecycle.meeting_end,
        }[self.action]
        done = act(
            meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request)
        )
        return Response(MeetingOutput(done).data)
