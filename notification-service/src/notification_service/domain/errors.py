"""Errors a client of notification-service may see, with stable codes."""

from __future__ import annotations

from paygate_common.errors import Conflict, InvalidRequest, NotFound


class NotificationNotFound(NotFound):
    code, title = "notification_not_found", "Notification not found"


class NotDeadLettered(Conflict):
    code, title = "not_dead_lettered", "The notification is not dead-lettered"


class InvalidWebhookUrl(InvalidRequest):
    code, title = "invalid_webhook_url", "The webhook URL is not allowed"


class WebhookSettingsNotFound(NotFound):
    code, title = "webhook_settings_not_found", "No webhook endpoint is configured"


class WebhookDeliveryNotFound(NotFound):
    code, title = "webhook_delivery_not_found", "Webhook delivery not found"


class InvalidTemplate(InvalidRequest):
    code, title = "invalid_template", "The template does not validate"


class UnknownTemplate(NotFound):
    code, title = "template_not_found", "No such event type and channel"


class InvalidPushSubscription(InvalidRequest):
    code, title = "invalid_push_subscription", "The push subscription is not valid"
