"""Signed-in sessions and login attempts, kept in the web process's memory.

A session is a random token in the ``dockd_session`` cookie (HttpOnly, SameSite=Strict,
Secure unless ``[web] cookie_secure = false``) that maps, here, to the login it was
opened for and its CSRF token. Nothing about a session is in the cookie itself, so
logging out or an idle timeout ends it for good: the token is forgotten. The memory is
the one uvicorn worker's (``dockd web`` runs one), so restarting the service signs
everyone out; that is the intended, safe failure.

Failed logins are counted per login name and per client address within a window
(``[web] login_attempts`` per ``login_window_minutes``); past the limit, a login is
refused before its password is even checked.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dockd.clock import Clock

SESSION_COOKIE = "dockd_session"
PRELOGIN_COOKIE = "dockd_prelogin"  # binds the login form's CSRF token before a session
LANG_COOKIE = "dockd_lang"


def new_token() -> str:
    """A 256-bit random token, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass
class WebSession:
    """One signed-in browser: whose it is, its CSRF token, and when it was last used."""

    token: str
    login: str
    csrf: str
    opened_at: datetime
    last_seen: datetime
    # Plays of this session: file id -> registered yet. The recording page opens a play
    # (False); its first media request registers it (True), so one play is one row in
    # the access register, not one per range request the video element makes.
    plays: dict[int, bool] = field(default_factory=dict)


class SessionStore:
    """The sessions and the failed-login counts of this process (thread-safe: uvicorn
    runs synchronous handlers in a thread pool)."""

    def __init__(self, clock: Clock, *, idle: timedelta, attempts: int, window: timedelta) -> None:
        self._clock = clock
        self._idle = idle
        self._attempts = attempts
        self._window = window
        self._sessions: dict[str, WebSession] = {}
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    @property
    def idle(self) -> timedelta:
        return self._idle

    # -------------------------------------------------------------------- sessions

    def open(self, login: str) -> WebSession:
        now = self._clock.now()
        sess = WebSession(new_token(), login, new_token(), now, now)
        with self._lock:
            self._sessions[sess.token] = sess
        return sess

    def get(self, token: str | None) -> WebSession | None:
        """The live session of ``token``, touched; None (and forgotten) once idle too long."""
        if not token:
            return None
        now = self._clock.now()
        with self._lock:
            sess = self._sessions.get(token)
            if sess is None:
                return None
            if now - sess.last_seen > self._idle:
                del self._sessions[token]
                return None
            sess.last_seen = now
            return sess

    def close(self, token: str | None) -> None:
        """Forget the session: its cookie no longer signs anyone in."""
        if token:
            with self._lock:
                self._sessions.pop(token, None)

    def close_login(self, login: str) -> None:
        """End every session of ``login`` (a disabled account)."""
        with self._lock:
            for token in [t for t, s in self._sessions.items() if s.login == login]:
                del self._sessions[token]

    def start_play(self, sess: WebSession, file_id: int) -> None:
        """The recording page shows the player: its next media request is a new play."""
        with self._lock:
            sess.plays[file_id] = False

    def claim_play(self, sess: WebSession, file_id: int) -> bool:
        """True once per play: for the media request that must register it (the video
        element's parallel range requests cannot both claim it)."""
        with self._lock:
            if sess.plays.get(file_id) is True:
                return False
            sess.plays[file_id] = True
            return True

    def unclaim_play(self, sess: WebSession, file_id: int) -> None:
        """Registering the play failed: the next request tries again."""
        with self._lock:
            sess.plays[file_id] = False

    # -------------------------------------------------------------------- attempts

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > self._window:
            times.popleft()
        return times

    def blocked(self, login: str, address: str) -> bool:
        """Too many failed logins lately for this login name or from this address."""
        now = self._clock.now()
        with self._lock:
            return any(
                len(self._recent(key, now)) >= self._attempts
                for key in (f"login:{login.casefold()}", f"addr:{address}")
            )

    def failed(self, login: str, address: str) -> None:
        now = self._clock.now()
        with self._lock:
            for key in (f"login:{login.casefold()}", f"addr:{address}"):
                self._recent(key, now).append(now)

    def succeeded(self, login: str) -> None:
        """A right password clears the count for the login (not for the address)."""
        with self._lock:
            self._failures.pop(f"login:{login.casefold()}", None)
