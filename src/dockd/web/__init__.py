"""The web view (issue 13): ``dockd web``, pages for auditors, supervisors and the station.

``app`` (``create_app``: security headers, error pages, the routers), ``server`` (uvicorn,
one worker), ``sessions`` (in memory: idle timeout, login rate limit, CSRF), ``deps``
(who is signed in, the permission table, a ledger session per request), ``render`` and
``i18n`` (Jinja2 pages in Chinese and English), ``recording_view``, ``routes/``. It sits
beside the CLI and calls the same core functions with the signed-in account as the
actor; nothing below it imports it.
"""
