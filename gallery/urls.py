from django.urls import path, register_converter

from gallery import hooks, views


class ChoiceConverter:
    """Matches one of a fixed set of words, so unknown variants 404 before any view runs."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.regex = "|".join(w.replace(".", r"\.") for w in words)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class PanConverter(ChoiceConverter):
    def __init__(self) -> None:
        super().__init__(("left", "right", "up", "down"))


class ZoomConverter(ChoiceConverter):
    def __init__(self) -> None:
        super().__init__(("2x", "1.5x"))


class TileConverter(ChoiceConverter):
    def __init__(self) -> None:
        super().__init__(("1", "2", "3", "4"))

    def to_python(self, value: str) -> int:  # type: ignore[override]
        return int(value)

    def to_url(self, value: int) -> str:  # type: ignore[override]
        return str(value)


class KindConverter(ChoiceConverter):
    def __init__(self) -> None:
        super().__init__(("grid", "single", "tile"))


class SizeConverter(ChoiceConverter):
    def __init__(self) -> None:
        super().__init__(("full", "thumb-large", "thumb"))


register_converter(PanConverter, "pan")
register_converter(ZoomConverter, "zoom")
register_converter(TileConverter, "tile")
register_converter(KindConverter, "kind")
register_converter(SizeConverter, "size")

app_name = "gallery"
urlpatterns = [
    path("", views.home, name="home"),
    path("imagine/", views.imagine, name="imagine"),
    path("import/", views.import_task, name="import"),
    path("jobs/<uuid:code>/", views.job_detail, name="job"),
    path("jobs/<uuid:code>/card/", views.job_card, name="card"),
    path("jobs/<uuid:code>/preview/", views.preview, name="preview"),
    path("jobs/<uuid:code>/reroll/", views.reroll, name="reroll"),
    path("jobs/<uuid:code>/upscale/<tile:index>/", views.upscale, name="upscale"),
    path("jobs/<uuid:code>/variation/<tile:index>/", views.variation, name="variation"),
    path("jobs/<uuid:code>/vary-subtle/", views.vary_subtle, name="vary_subtle"),
    path("jobs/<uuid:code>/vary-strong/", views.vary_strong, name="vary_strong"),
    path("jobs/<uuid:code>/upscale-subtle/", views.upscale_subtle, name="upscale_subtle"),
    path("jobs/<uuid:code>/upscale-creative/", views.upscale_creative, name="upscale_creative"),
    path("jobs/<uuid:code>/zoom-out/<zoom:factor>/", views.zoom_out, name="zoom_out"),
    path("jobs/<uuid:code>/pan/<pan:direction>/", views.pan, name="pan"),
    path("jobs/<uuid:code>/remix/", views.remix, name="remix"),
    path("jobs/<uuid:code>/cancel/", views.cancel, name="cancel"),
    path("jobs/<uuid:code>/resync/", views.resync, name="resync"),
    path("jobs/<uuid:code>/favorite/", views.favorite, name="favorite"),
    path("jobs/<uuid:code>/delete/", views.delete, name="delete"),
    path("jobs/live/", views.live, name="live"),
    path(
        "jobs/<uuid:code>/download/<kind:kind>/<int:index>/",
        views.download,
        name="download",
    ),
    path("settings/remix-mode/", views.remix_mode, name="remix_mode"),
    path("hooks/cometapi/<str:token>/", hooks.cometapi, name="hook_cometapi"),
    path("hooks/piapi/<str:token>/", hooks.piapi, name="hook_piapi"),
    path(
        "jobs/<uuid:code>/images/<kind:kind>/<int:index>/<size:size>/",
        views.image_file,
        name="image",
    ),
]
