from django.urls import path

from meetings import api
from meetings.views import e2ee, hosts, participants, rooms

app_name = "meetings"

urlpatterns = [
    path("meetings/", hosts.meeting_list, name="list"),
    path("meetings/new/", hosts.meeting_book, name="book"),
    path("meetings/<str:meeting_id>/", hosts.meeting_detail, name="detail"),
    path("meetings/<str:meeting_id>/edit/", hosts.meeting_edit, name="edit"),
    path("meetings/<str:meeting_id>/booked/", hosts.meeting_booked, name="booked"),
    path("meetings/<str:meeting_id>/passcode/new/", hosts.meeting_passcode_shown, name="passcode_shown"),
    path("meetings/<str:meeting_id>/cancel/", hosts.meeting_cancel, name="cancel"),
    path("meetings/<str:meeting_id>/passcode/", hosts.meeting_rotate_passcode, name="rotate_passcode"),
    path("meetings/<str:meeting_id>/invitations/", hosts.meeting_invitations, name="invitations"),
    path(
        "meetings/<str:meeting_id>/invitations/<int:invitation_id>/<str:action>/",
        hosts.invitation_action,
        name="invitation_action",
    ),
    # SECURITY: the one secret a URL may carry: single use, expiring, bound to one invitee.
    # Before the link's route: "continue" is no token (too short to be taken for one).
    path("j/continue/", participants.link_continue, name="link_continue"),
    path("j/<str:token>/", participants.link, name="link"),
    path("invited/<int:invitation_id>/", participants.invited, name="invited"),
    path("meetings/<str:meeting_id>/lobby/", rooms.meeting_lobby, name="lobby"),
    path("meetings/<str:meeting_id>/lobby/admit-all/", rooms.meeting_lobby_admit_all, name="lobby_admit_all"),
    path(
        "meetings/<str:meeting_id>/lobby/<int:entry_id>/<str:decision>/",
        rooms.meeting_lobby_decide,
        name="lobby_decide",
    ),
    path("meetings/<str:meeting_id>/room/", rooms.meeting_room_host, name="host_room"),
    path("meetings/<str:meeting_id>/room/e2ee/", e2ee.host_keys, name="host_e2ee_keys"),
    path("meetings/<str:meeting_id>/room/people/", rooms.meeting_room_people, name="host_room_people"),
    path("meetings/<str:meeting_id>/<str:action>/", rooms.meeting_lifecycle, name="lifecycle"),
    path("join/", participants.join, name="join"),
    path("join/<int:entry_id>/", participants.join_waiting, name="join_waiting"),
    path("join/<int:entry_id>/status/", participants.join_status, name="join_status"),
    path("join/<int:entry_id>/room/", participants.join_room, name="join_room"),
    path("join/<int:entry_id>/room/e2ee/", e2ee.participant_keys, name="join_e2ee_keys"),
    path("join/<int:entry_id>/room/people/", participants.join_room_people, name="join_room_people"),
]

api_urlpatterns = [
    path("classifications/", api.LevelListApi.as_view(), name="api-levels"),
    # str, not slug: any other code gets the API's JSON 404, not the site's HTML one.
    path("classifications/<str:code>/", api.LevelDetailApi.as_view(), name="api-level"),
    path("meetings/", api.MeetingListApi.as_view(), name="api-meetings"),
    path("meetings/<str:meeting_id>/", api.MeetingDetailApi.as_view(), name="api-meeting"),
    path("meetings/<str:meeting_id>/cancel/", api.MeetingCancelApi.as_view(), name="api-meeting-cancel"),
    path(
        "meetings/<str:meeting_id>/classification/",
        api.MeetingLevelApi.as_view(),
        name="api-meeting-classification",
    ),
    path(
        "meetings/<str:meeting_id>/passcode/", api.MeetingPasscodeApi.as_view(), name="api-meeting-passcode"
    ),
    path(
        "meetings/<str:meeting_id>/invitations/",
        api.MeetingInvitationsApi.as_view(),
        name="api-meeting-invitations",
    ),
    path(
        "meetings/<str:meeting_id>/invitations/<str:invitation_id>/resend/",
        api.InvitationResendApi.as_view(),
        name="api-invitation-resend",
    ),
    path(
        "meetings/<str:meeting_id>/invitations/<str:invitation_id>/revoke/",
        api.InvitationRevokeApi.as_view(),
        name="api-invitation-revoke",
    ),
    path("meetings/<str:meeting_id>/lobby/", api.LobbyApi.as_view(), name="api-lobby"),
    path(
        "meetings/<str:meeting_id>/lobby/admit-all/",
        api.LobbyAdmitAllApi.as_view(),
        name="api-lobby-admit-all",
    ),
    *[
        path(
            f"meetings/<str:meeting_id>/lobby/<int:entry_id>/{decision}/",
            api.LobbyDecisionApi.as_view(decision=decision),
            name=f"api-lobby-{decision}",
        )
        for decision in ("admit", "deny", "remove")
    ],
    *[
        path(
            f"meetings/<str:meeting_id>/{action}/",
            api.MeetingLifecycleApi.as_view(action=action),
            name=f"api-meeting-{action}",
        )
        for action in ("start", "lock", "unlock", "end")
    ],
    path("join/", api.JoinApi.as_view(), name="api-join"),
]
