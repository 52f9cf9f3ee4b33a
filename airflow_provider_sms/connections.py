"""The three connection types as data: labels, extra fields and UI behaviour, with no heavy import.

``get_provider_info`` publishes these (Airflow 3.2+ builds the connection form from them without
importing hooks), and each hook's ``get_connection_form_widgets``/``get_ui_field_behaviour`` builds the
same form for Airflow 2.11, so the two never drift apart.
"""

from __future__ import annotations

from typing import Any

_TIMEOUT = {
    "label": "Read timeout (seconds)",
    "schema": {"type": ["number", "null"], "default": 30},
    "description": "Seconds to wait for an answer; the connect timeout is 10 seconds.",
}

_HIDDEN = ["schema", "login", "port", "extra"]

_WEBHOOK_SECRET = {
    "label": "Webhook secret",
    "schema": {"type": ["string", "null"], "format": "password"},
    "description": "Required on every call to /sms/webhooks/<conn_id>/... (Airflow 3): put it in the URL you "
    "register with the provider as ?secret=..., or as the HTTP Basic password. Blank turns the webhooks off.",
}


_REGISTERED_SENDERS = {
    "label": "Registered sender IDs",
    "schema": {"type": ["string", "null"]},
    "description": "Optional, comma-separated (e.g. MyCompany, 61400000000): any other sender ID is refused "
    "before sending (Australia's Sender ID Register applies from 1 July 2026). Blank allows any valid ID.",
}

_ALLOWED_COUNTRIES = {
    "label": "Allowed countries",
    "schema": {"type": ["string", "null"]},
    "description": "Optional ISO codes, comma-separated (e.g. AU, NZ): numbers in other countries are rejected "
    "before any request (a defence against SMS-pumping fraud). Blank allows every country.",
}

_PRICES = {
    "label": "Prices per SMS part",
    "schema": {"type": ["string", "null"]},
    "description": 'Optional JSON, your price per SMS part by ISO country code, e.g. {"AU": 0.055, "GB": 0.04, '
    '"default": 0.08}: dry runs show the estimated cost and max_cost checks it. No prices are built in.',
}


def _sender(example: str, digits: int) -> dict[str, Any]:
    return {
        "label": "Default sender ID",
        "schema": {"type": ["string", "null"]},
        "description": f"Alphanumeric (3 to 11 of A-Z a-z 0-9, space, dash) or numeric (at most {digits} digits), "
        f"e.g. {example}. Blank uses the provider's default number.",
    }


def _compliance() -> dict[str, Any]:
    """The fields every connection type has for sender, country and cost checks."""
    return {"registered_senders": _REGISTERED_SENDERS, "allowed_countries": _ALLOWED_COUNTRIES, "prices": _PRICES}


CONNECTION_TYPES: dict[str, dict[str, Any]] = {
    "cellcast": {
        "hook-class-name": "airflow_provider_sms.hooks.cellcast.CellcastHook",
        "hook-name": "Cellcast SMS",
        "connection-type": "cellcast",
        "conn-fields": {
            "sender": _sender("MyCompany", 16),
            "country_code": {
                "label": "Country calling code",
                "schema": {"type": ["string", "null"], "default": "61"},
                "description": "Region for numbers given without a country code (Cellcast sends to 61 only).",
            },
            "timeout": _TIMEOUT,
            "webhook_secret": _WEBHOOK_SECRET,
            **_compliance(),
        },
        "ui-field-behaviour": {
            "hidden-fields": _HIDDEN,
            "relabeling": {"password": "API token", "host": "Base URL"},
            "placeholders": {"host": "https://api.cellcast.com (default)", "password": "Cellcast API token"},
        },
    },
    "clickatell": {
        "hook-class-name": "airflow_provider_sms.hooks.clickatell.ClickatellHook",
        "hook-name": "Clickatell SMS",
        "connection-type": "clickatell",
        "conn-fields": {
            "sender": _sender("+14155550123", 15),
            "request_format": {
                "label": "Request format",
                "schema": {"type": ["string", "null"], "default": "json", "enum": ["json", "xml"]},
                "description": "json or xml: the body format sent to /messages.",
            },
            "country_code": {
                "label": "Country calling code",
                "schema": {"type": ["string", "null"]},
                "description": "Optional region for numbers given without a country code.",
            },
            "timeout": _TIMEOUT,
            "webhook_secret": _WEBHOOK_SECRET,
            **_compliance(),
        },
        "ui-field-behaviour": {
            "hidden-fields": _HIDDEN,
            "relabeling": {"password": "API key", "host": "Base URL"},
            "placeholders": {
                "host": "https://platform.clickatell.com (default)",
                "password": "Clickatell API key (sent as the Authorization header)",
            },
        },
    },
    "cloudware": {
        "hook-class-name": "airflow_provider_sms.hooks.cloudware.CloudwareHook",
        "hook-name": "Cloudware SMS",
        "connection-type": "cloudware",
        "conn-fields": {
            "sender": _sender("MyCompany", 15),
            "country_code": {
                "label": "Country calling code",
                "schema": {"type": ["string", "null"]},
                "description": "Optional region for numbers given without a country code.",
            },
            "timeout": _TIMEOUT,
            "webhook_secret": _WEBHOOK_SECRET,
            **_compliance(),
        },
        "ui-field-behaviour": {
            "hidden-fields": _HIDDEN,
            "relabeling": {"password": "Access token", "host": "Base URL"},
            "placeholders": {"host": "https://api.cloudware.chat (default)", "password": "Cloudware access token"},
        },
    },
}


def form_widgets(conn_type: str) -> dict[str, Any]:
    """wtforms widgets for Airflow 2.11's connection form, built from ``CONNECTION_TYPES``."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField

    widgets = {}
    for name, spec in CONNECTION_TYPES[conn_type]["conn-fields"].items():
        secret = spec["schema"].get("format") == "password"
        field, widget = (PasswordField, BS3PasswordFieldWidget) if secret else (StringField, BS3TextFieldWidget)
        widgets[name] = field(lazy_gettext(spec["label"]), widget=widget(), description=spec.get("description"))
    return widgets


def field_behaviour(conn_type: str) -> dict[str, Any]:
    """The ``get_ui_field_behaviour`` dict (snake_case keys) for ``conn_type``."""
    behaviour = CONNECTION_TYPES[conn_type]["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }


def environment_connections() -> list[Any]:
    """The SMS connections defined in ``AIRFLOW_CONN_*`` environment variables (JSON or URI), as Airflow
    ``Connection`` objects; one that cannot be read is skipped (Airflow reports it where it is used)."""
    import os

    from airflow.models.connection import Connection

    found = []
    for name, value in os.environ.items():
        if not name.startswith("AIRFLOW_CONN_") or not value:
            continue
        conn_id = name[len("AIRFLOW_CONN_") :].lower()
        try:
            conn = Connection.from_json(value, conn_id=conn_id) if value.lstrip().startswith("{") else None
            conn = conn or Connection(conn_id=conn_id, uri=value)
        except Exception:  # noqa: S112 - not ours to judge; Airflow reports it where it is used
            continue
        if (conn.conn_type or "").lower() in CONNECTION_TYPES:
            found.append(conn)
    return found
