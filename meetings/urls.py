from django.urls import path

from meetings import api, invitation_views, views

app_name = "meetings"

urlpatterns = [
    path("meetings/", views.meeting_list, name="list"),
    path("meetings/new/", views.meeting_book, name="book"),
    path("meetings/<str:meeting_id>/", views.meeting_detail, name="detail"),
    path("meetings/<str:meeting_id>/cancel/", views.meeting_cancel, name="cancel"),
    path("meetings/<str:meeting_id>/passcode/", views.meeting_rotate_passcode, name="rotate_passcode"),
    path("meetings/<str:meeting_id>/invitations/", invitation_views.invitations, name="invitations"),
    path(
        "meetings/<str:meeting_id>/invitations/<int:invitation_id>/<str:action>/",
        invitation_views.invitation_action,
        name="invitation_action",
    ),
    # SECURITY: the one secret a URL may carry: single use, expiring, bound to one invitee.
    path("j/<str:token>/", invitation_views.link, name="link"),
    path("invited/<int:invitation_id>/", invitation_views.invited, name="invited"),
]

api_urlpatterns = [
    path("classifications/", api.LevelListApi.as_view(), name="api-levels"),
    path("classifications/<slug:code>/", api.LevelDetailApi.as_view(), name="api-level"),
    path("meetings/", api.MeetingListApi.as_view(), name="api-meetings"),
    path("meetings/<str:meeting_id>/", api.MeetingDetailApi.as_view(), name="api-meeting"),
    path("meetings/<str:meeting_id>/cancel/", api.MeetingCancelApi.as_view(), name="api-meeting-cancel"),
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
]
