"""admin-service's errors, each with a stable `code`."""

from __future__ import annotations

from paygate_common.errors import InvalidRequest, NotFound


class UnknownConfigKey(NotFound):
    code, title = "config_key_unknown", "No such configuration key"


class ConfigVersionNotFound(NotFound):
    code, title = "config_version_not_found", "No such version of this key"


class ConfigInvalid(InvalidRequest):
    code, title = "config_invalid", "The value does not match the key's schema"
