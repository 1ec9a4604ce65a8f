"""The notification bell in every signed-in page's header: unread count, latest items, and a
toast when something new arrives. It polls a cheap query every few seconds."""

from __future__ import annotations

import reflex as rx

from pacs_app.services import notifications
from pacs_app.ui.state import AuthState, call_domain

POLL_MS = 5000


class NotificationState(AuthState):
    unread: int = 0
    items: list[dict[str, str]] = []
    _newest_seen: int = -1  # -1: not loaded yet, no toast for what was there before

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return None
        result = await call_domain(notifications.list_for, actor=actor, limit=10)
        self.unread = result.unread
        self.items = [
            {
                "id": str(n.id),
                "message": n.message,
                "study_id": n.study_id,
                "at": n.created_at.strftime("%Y-%m-%d %H:%M"),
                "unread": "1" if n.read_at is None else "",
            }
            for n in result.items
        ]
        newest = result.items[0].id if result.items else 0
        fresh = [n for n in result.items if n.read_at is None and n.id > max(self._newest_seen, 0)]
        first_load = self._newest_seen < 0
        self._newest_seen = max(newest, self._newest_seen)
        if fresh and not first_load:
            return rx.toast.info(fresh[0].message, duration=8000, id="notification-toast")
        return None

    @rx.event
    async def poll(self, _value: str = ""):
        return await self._load()

    @rx.event
    async def mark_all_read(self):
        actor = await self.actor()
        if actor is None:
            return
        await call_domain(notifications.mark_read, actor=actor)
        await self._load()


def notification_bell() -> rx.Component:
    return rx.popover.root(
        rx.popover.trigger(
            rx.button(
                rx.icon("bell", size=16),
                rx.cond(
                    NotificationState.unread > 0,
                    rx.badge(
                        NotificationState.unread.to_string(),
                        color_scheme="red",
                        variant="solid",
                        id="notification-count",
                    ),
                ),
                variant="soft",
                color_scheme="gray",
                id="notification-bell",
                aria_label="Notifications",
            )
        ),
        rx.popover.content(
            rx.vstack(
                rx.hstack(
                    rx.heading("Notifications", size="3"),
                    rx.spacer(),
                    rx.button(
                        "Mark all read",
                        size="1",
                        variant="ghost",
                        on_click=NotificationState.mark_all_read,
                        id="notifications-read",
                    ),
                    width="100%",
                    align="center",
                ),
                rx.cond(
                    NotificationState.items.length() > 0,
                    rx.foreach(
                        NotificationState.items,
                        lambda n: rx.link(
                            rx.box(
                                rx.text(
                                    n["message"],
                                    size="2",
                                    weight=rx.cond(n["unread"] != "", "bold", "regular"),
                                ),
                                rx.text(n["at"], " UTC", size="1", color_scheme="gray"),
                                padding="0.4em",
                                border_radius="4px",
                                _hover={"background": rx.color("gray", 3)},
                            ),
                            href="/study/" + n["study_id"],
                            underline="none",
                            color=rx.color("gray", 12),
                            class_name="notification-item",
                        ),
                    ),
                    rx.text("Nothing new.", size="2", color_scheme="gray"),
                ),
                spacing="1",
                width="340px",
                id="notification-list",
            ),
        ),
    )


def notification_poller() -> rx.Component:
    """Mounted once per signed-in page: reloads the bell every few seconds."""
    return rx.moment(interval=POLL_MS, on_change=NotificationState.poll, display="none")
