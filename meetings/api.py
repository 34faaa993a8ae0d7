"""REST API views: parse with an input serializer, call one service, answer."""

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from meetings import selectors, services
from meetings.authentication import has_second_factor, signed_in_user
from meetings.models import ClassificationLevel, Invitation, Meeting
from meetings.serializers import (
    InvitationOutput,
    InvitationsCreateInput,
    LevelOutput,
    LevelUpdateInput,
    MeetingBookInput,
    MeetingOutput,
    MeetingUpdateInput,
    MeetingWithPasscodeOutput,
    PasscodeOutput,
)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus a policy refusal as a 400 naming each field."""
    if isinstance(exc, services.Refused):
        return Response(exc.as_dict(), status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


class IsStaffWithSecondFactor(permissions.BasePermission):
    message = "Only staff who passed a second factor may change classification levels."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user.is_staff and has_second_factor(request))


def _host_meeting(request: Request, meeting_id: str) -> Meeting:
    meeting = selectors.meeting_for_host(request.user, meeting_id)
    if meeting is None:
        # SECURITY: 404 for unknown and for someone else's meeting alike.
        raise Http404("No such meeting.")
    return meeting


class LevelListApi(APIView):
    @extend_schema(responses=LevelOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(LevelOutput(selectors.levels(), many=True).data)


class LevelDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaffWithSecondFactor]

    def _level(self, code: str) -> ClassificationLevel:
        level = selectors.level_by_code(code)
        if level is None:
            raise Http404("No such classification level.")
        return level

    @extend_schema(responses=LevelOutput)
    def get(self, request: Request, code: str) -> Response:
        return Response(LevelOutput(self._level(code)).data)

    @extend_schema(request=LevelUpdateInput, responses=LevelOutput)
    def patch(self, request: Request, code: str) -> Response:
        level = self._level(code)
        serializer = LevelUpdateInput(data=request.data, context={"level": level})
        serializer.is_valid(raise_exception=True)
        level, _touched = services.classification_update(
            level=level, actor=signed_in_user(request), changes=dict(serializer.validated_data)
        )
        return Response(LevelOutput(level).data)


class MeetingListApi(APIView):
    @extend_schema(responses=MeetingOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(MeetingOutput(selectors.meetings_for_host(request.user), many=True).data)

    @extend_schema(
        request=MeetingBookInput,
        responses={201: MeetingWithPasscodeOutput, 400: OpenApiResponse(description="Refused, by field")},
    )
    def post(self, request: Request) -> Response:
        serializer = MeetingBookInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        booked = services.meeting_book(
            host=signed_in_user(request),
            title=data["title"],
            starts_at=data["starts_at"],
            duration_minutes=data["duration_minutes"],
            timezone_name=data["timezone"],
            classification=data["classification"],
            cloud_recording=data["cloud_recording"],
            dial_in=data["dial_in"],
            waiting_room=data["waiting_room"],
            invitees=data["invitees"],
            host_has_second_factor=has_second_factor(request),
        )
        output = MeetingWithPasscodeOutput(booked.meeting).data
        output["passcode"] = booked.passcode
        return Response(output, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class MeetingDetailApi(APIView):
    @extend_schema(responses=MeetingOutput)
    def get(self, request: Request, meeting_id: str) -> Response:
        return Response(MeetingOutput(_host_meeting(request, meeting_id)).data)

    @extend_schema(request=MeetingUpdateInput, responses=MeetingOutput)
    def patch(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        serializer = MeetingUpdateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = services.meeting_update(
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


class MeetingCancelApi(APIView):
    @extend_schema(request=None, responses=MeetingOutput)
    def post(self, request: Request, meeting_id: str) -> Response:
        meeting = services.meeting_cancel(
            meeting=_host_meeting(request, meeting_id), actor=signed_in_user(request)
        )
        return Response(MeetingOutput(meeting).data)


class MeetingPasscodeApi(APIView):
    @extend_schema(request=None, responses=PasscodeOutput)
    def post(self, request: Request, meeting_id: str) -> Response:
        passcode = services.meeting_rotate_passcode(
            meeting=_host_meeting(request, meeting_id),
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
        return Response({"passcode": passcode}, headers={"Cache-Control": "no-store"})


class MeetingInvitationsApi(APIView):
    @extend_schema(responses=InvitationOutput(many=True))
    def get(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        invitations = selectors.invitations_for_meeting(meeting)
        return Response(InvitationOutput(invitations, many=True, context={"meeting": meeting}).data)

    @extend_schema(request=InvitationsCreateInput, responses={201: InvitationOutput(many=True)})
    def post(self, request: Request, meeting_id: str) -> Response:
        meeting = _host_meeting(request, meeting_id)
        serializer = InvitationsCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.invitations_create(
            meeting=meeting,
            actor=signed_in_user(request),
            emails_to_invite=serializer.validated_data["emails"],
            host_has_second_factor=has_second_factor(request),
        )
        invitations = selectors.invitations_for_meeting(meeting).filter(pk__in=[i.pk for i in created])
        return Response(
            InvitationOutput(invitations, many=True, context={"meeting": meeting}).data,
            status=status.HTTP_201_CREATED,
        )


def _host_invitation(request: Request, meeting_id: str, invitation_id: str) -> Invitation:
    invitation = selectors.invitation_for_host(_host_meeting(request, meeting_id), invitation_id)
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


class InvitationResendApi(APIView):
    @extend_schema(request=None, responses=InvitationOutput)
    def post(self, request: Request, meeting_id: str, invitation_id: str) -> Response:
        invitation = services.invitation_resend(
            invitation=_host_invitation(request, meeting_id, invitation_id),
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
        row = selectors.invitations_for_meeting(invitation.meeting).get(pk=invitation.pk)
        return Response(InvitationOutput(row, context={"meeting": invitation.meeting}).data)


class InvitationRevokeApi(APIView):
    @extend_schema(request=None, responses=InvitationOutput)
    def post(self, request: Request, meeting_id: str, invitation_id: str) -> Response:
        invitation = services.invitation_revoke(
            invitation=_host_invitation(request, meeting_id, invitation_id),
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
        row = selectors.invitations_for_meeting(invitation.meeting).get(pk=invitation.pk)
        return Response(InvitationOutput(row, context={"meeting": invitation.meeting}).data)
