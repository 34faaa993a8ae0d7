from django.urls import path

from meetings import api, views

app_name = "meetings"

urlpatterns = [
    path("meetings/", views.meeting_list, name="list"),
    path("meetings/new/", views.meeting_book, name="book"),
    path("meetings/<str:meeting_id>/", views.meeting_detail, name="detail"),
    path("meetings/<str:meeting_id>/cancel/", views.meeting_cancel, name="cancel"),
    path("meetings/<str:meeting_id>/passcode/", views.meeting_rotate_passcode, name="rotate_passcode"),
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
]
