from typing import Any

from django.urls import URLPattern, path, register_converter

from gallery import api, hooks, views
from gallery.models import Image
from mjweb import catalogue


class ChoiceConverter:
    """Matches one of a fixed set of words, so unknown variants 404 before any view runs."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.regex = "|".join(w.replace(".", r"\.") for w in words)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class TileConverter(ChoiceConverter):
    def __init__(self) -> None:
        super().__init__(("1", "2", "3", "4"))

    def to_python(self, value: str) -> int:  # type: ignore[override]
        return int(value)

    def to_url(self, value: int) -> str:  # type: ignore[override]
        return str(value)


def choice_converter(words: tuple[str, ...]) -> type[ChoiceConverter]:
    class Converter(ChoiceConverter):
        def __init__(self) -> None:
            super().__init__(words)

    return Converter


register_converter(TileConverter, "tile")
register_converter(choice_converter(tuple(Image.Kind.values)), "kind")
register_converter(choice_converter(Image.SIZES), "size")


def _press_path(action: catalogue.Action) -> URLPattern:
    """One URL per button action of the catalogue: jobs/<code>/<action>/[<index>|<variant>]/."""
    route = f"jobs/<uuid:code>/{action.name.replace('_', '-')}/"
    if action.takes == "index":
        route += "<tile:index>/"
    elif action.takes == "variant":
        register_converter(choice_converter(action.variants), f"{action.name}_variant")
        route += f"<{action.name}_variant:variant>/"
    return path(route, views.press, {"action": action.name}, name=action.url_name)


register_converter(choice_converter(tuple(api.MODE_PREFIXES)), "api_mode")


def _api_paths(route: str, view: Any, name: str) -> list[URLPattern]:
    """An API route as midjourney-proxy serves it: bare, and under a speed-mode prefix."""
    return [
        path(route, view, name=name),
        path(f"<api_mode:prefix>/{route}", view, name=f"{name}_mode"),
    ]


app_name = "gallery"

urlpatterns = [
    path("", views.home, name="home"),
    path("imagine/", views.imagine, name="imagine"),
    path("import/", views.import_task, name="import"),
    path("blend/", views.blend, name="blend"),
    path("describe/", views.describe, name="describe"),
    path("pictures/<uuid:code>/", views.reference_image, name="reference"),
    path("pictures/link/<str:token>/", views.reference_link, name="reference_link"),
    path("jobs/<uuid:code>/", views.job_detail, name="job"),
    path("jobs/<uuid:code>/card/", views.job_card, name="card"),
    path("jobs/<uuid:code>/preview/", views.preview, name="preview"),
    *(_press_path(action) for action in catalogue.ACTIONS if action.is_button),
    path("jobs/<uuid:code>/remix/", views.remix, name="remix"),
    path("jobs/<uuid:code>/cancel/", views.cancel, name="cancel"),
    path("jobs/<uuid:code>/resync/", views.resync, name="resync"),
    path("jobs/<uuid:code>/favorite/", views.favorite, name="favorite"),
    path("jobs/<uuid:code>/delete/", views.delete, name="delete"),
    path("jobs/<uuid:code>/share/", views.share, name="share"),
    path("jobs/<uuid:code>/unshare/", views.unshare, name="unshare"),
    # A job's public link: no login; the code is the permission (see views.shared).
    path("s/<uuid:share_code>/", views.shared, name="shared"),
    path("s/<uuid:share_code>/image/<size:size>/", views.shared_image, name="shared_image"),
    path("jobs/live/", views.live, name="live"),
    path("jobs/stream/", views.stream, name="stream"),
    path(
        "jobs/<uuid:code>/download/<kind:kind>/<int:index>/",
        views.download,
        name="download",
    ),
    path("settings/remix-mode/", views.remix_mode, name="remix_mode"),
    # The JSON API in midjourney-proxy's protocol (gallery.api); the speed mode as a prefix.
    *_api_paths("mj/submit/imagine", api.imagine, "api_imagine"),
    *_api_paths("mj/submit/action", api.action, "api_action"),
    *_api_paths("mj/submit/modal", api.modal, "api_modal"),
    *_api_paths("mj/submit/blend", api.blend, "api_blend"),
    *_api_paths("mj/submit/describe", api.describe, "api_describe"),
    *_api_paths("mj/task/<str:task_id>/fetch", api.fetch, "api_fetch"),
    *_api_paths("mj/task/list-by-condition", api.list_by_condition, "api_list"),
    path("api/images/<str:token>/", api.image, name="api_image"),
    path("api/openapi.json", api.openapi, name="api_openapi"),
    path("hooks/cometapi/<str:token>/", hooks.cometapi, name="hook_cometapi"),
    path("hooks/piapi/<str:token>/", hooks.piapi, name="hook_piapi"),
    path(
        "hooks/cometapi/<str:token>/<slug:account>/", hooks.cometapi, name="hook_cometapi_account"
    ),
    path("hooks/piapi/<str:token>/<slug:account>/", hooks.piapi, name="hook_piapi_account"),
    path(
        "jobs/<uuid:code>/images/<kind:kind>/<int:index>/<size:size>/",
        views.image_file,
        name="image",
    ),
]
