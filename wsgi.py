"""`gunicorn wsgi:app` — the API only; run `gridloop scheduler` and `gridloop worker` beside it."""

from api import create_app
from api.logs import configure_logging
from api.settings import Settings

settings = Settings.from_env()
configure_logging(settings.log_level, settings.log_json, settings.log_level_spiff)
app = create_app(settings)
