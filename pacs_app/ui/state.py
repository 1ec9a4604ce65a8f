"""Shared UI state: the browser's access token and who is signed in.

The token lives in the browser's localStorage, so a reload keeps the session. Every handler
that reads or changes data resolves the actor again from the token through the domain layer
(``actor()``); a hidden page is never the only check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import reflex as rx

from pacs_app.core import db
from pacs_app.core.errors import AuthenticationFailed, DomainError
from pacs_app.services import auth
from pacs_app.services.authz import Actor
from pacs_app.services.dto import UserPublic
from pacs_app.ui import routes

T = TypeVar("T")


async def call_domain(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a domain function with a fresh session in a worker thread (off the event loop)."""

    def run() -> T:
        with db.session_scope() as session:
            return fn(session=session, **kwargs)

    return await asyncio.to_thread(run)


class AuthState(rx.State):
    # The bearer token, in the browser's localStorage (synced across tabs).
    token: str = rx.LocalStorage("", name="pacs_token", sync=True)

    # What the page shows about the signed-in user: display data only.
    user_id: int = 0
    username: str = ""
    display_name: str = ""
    role: str = ""
    centre_name: str = ""
    centre_code: str = ""
    is_tele_radiologist: bool = False
    auth_checked: bool = False

    @rx.var
    def signed_in(self) -> bool:
        return self.user_id > 0

    @rx.var
    def home_route(self) -> str:
        return routes.dashboard_for(self.role) if self.role else routes.LOGIN

    @rx.var
    def role_label(self) -> str:
        if self.role == "radiologist":
            return "Tele-radiologist" if self.is_tele_radiologist else "Radiologist (internal)"
        return {
            "admin": "Administrator",
            "centre": "Centre manager",
            "technician": "Technician",
        }.get(self.role, "")

    def _path_study_id(self) -> str:
        """The Study ID at the end of the page's path (``/study/K3Q9ZP2A``, ``/report/...``)."""
        return self.router.url.path.rstrip("/").rsplit("/", 1)[-1].upper()

    def _client_address(self) -> str | None:
        return self.router.session.client_ip or None

    def _show_user(self, user: UserPublic | None) -> None:
        self.user_id = user.id if user else 0
        self.username = user.username if user else ""
        self.display_name = user.display_name if user else ""
        self.role = user.role.value if user else ""
        self.centre_name = user.centre.name if user and user.centre else ""
        self.centre_code = user.centre.code if user and user.centre else ""
        self.is_tele_radiologist = bool(user and user.is_tele_radiologist)

    def _forget(self) -> None:
        self.token = ""
        self._show_user(None)

    async def actor(self) -> Actor | None:
        """The actor behind the browser's token, checked now; ``None`` (and signed out) if none."""
        if not self.token:
            self._show_user(None)
            return None
        token, address = self.token, self._client_address()

        def resolve(session) -> tuple[Actor, UserPublic]:
            actor = auth.resolve_token(session=session, token=token, address=address)
            return actor, auth.current_user(session=session, actor=actor)

        try:
            actor, user = await call_domain(resolve)
        except AuthenticationFailed:
            self._forget()
            return None
        self._show_user(user)
        return actor

    async def as_actor(self, fn: Callable[..., T], /, **kwargs: Any) -> tuple[T | None, Any]:
        """Call the domain function ``fn`` for the signed-in actor.

        Returns ``(result, None)``, or ``(None, answer)`` where ``answer`` is what the event
        handler returns instead: the sign-in page when no one is signed in, or the refusal as
        an error toast. Example::

            found, answer = await self.as_actor(billing.invoice_file, invoice_id=7, kind="pdf")
            if answer is not None:
                return answer
        """
        actor = await self.actor()
        if actor is None:
            return None, rx.redirect(routes.LOGIN)
        try:
            return await call_domain(fn, actor=actor, **kwargs), None
        except DomainError as exc:
            return None, rx.toast.error(exc.message)

    @rx.event
    async def require_login(self):
        """on_load of pages for any signed-in user: go to the login page otherwise."""
        actor = await self.actor()
        self.auth_checked = True
        if actor is None:
            return rx.redirect(routes.LOGIN)

    @rx.event
    async def go_home(self):
        """on_load of ``/``: the user's dashboard, or the login page."""
        actor = await self.actor()
        return rx.redirect(routes.dashboard_for(actor.role) if actor else routes.LOGIN)

    @rx.event
    async def sign_out(self):
        token, address = self.token, self._client_address()
        if token:
            # An unusable token is as good as signed out.
            with contextlib.suppress(DomainError):
                await call_domain(auth.sign_out, token=token, address=address)
        self._forget()
        return rx.redirect(routes.LOGIN)


class PagedMixin(rx.State, mixin=True):
    """A list shown a page at a time: the page, how many there are, how many rows in all,
    moving between pages, and a search. The page's state defines ``async _load()``, which
    reloads its rows and answers ``False`` once no one is signed in."""

    page: int = 1
    pages: int = 1
    total: int = 0
    search: str = ""

    async def _reload(self):
        if not await self._load():
            return rx.redirect(routes.LOGIN)

    @rx.event
    async def set_search(self, value: str):
        """Another search shows its first page. The same text again changes nothing: a
        debounced field sends its text again when it loses focus, as when a button on the
        page is clicked, which must not move the list back to its first page."""
        value = value[:100]
        if value == self.search:
            return
        self.search, self.page = value, 1
        return await self._reload()

    @rx.event
    async def next_page(self):
        if self.page < self.pages:
            self.page += 1
            return await self._reload()

    @rx.event
    async def prev_page(self):
        if self.page > 1:
            self.page -= 1
            return await self._reload()
