"""Errors a client of notification-service may see, with stable codes."""

from __future__ import annotations

from paygate_common.errors import Conflict, NotFound


class NotificationNotFound(NotFound):
    code, title = "notification_not_found", "Notification not found"


class NotDeadLettered(Conflict):
    code, title = "not_dead_lettered", "The notification is not dead-lettered"
