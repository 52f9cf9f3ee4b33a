"""The assets the SMS webhooks write to (Airflow 3): one for replies and one for delivery reports per connection.

Schedule a DAG on them to run it for every reply or report the provider pushes, with no polling:
``schedule=[inbound_sms_asset("cloudware_default")]``. Each event's ``extra`` holds the message
(``{"message": InboundMessage.to_dict()}``) or the report (``{"report": DeliveryReport.to_dict()}``).
"""

from __future__ import annotations

from typing import Any

INBOUND = "inbound"
STATUS = "status"


def asset_uri(conn_id: str, kind: str) -> str:
    """``sms://<conn_id>/inbound`` or ``sms://<conn_id>/status``."""
    return f"sms://{conn_id}/{kind}"


def asset_name(conn_id: str, kind: str) -> str:
    return f"sms_{kind}__{conn_id}"


def _asset(conn_id: str, kind: str) -> Any:
    try:
        from airflow.sdk import Asset
    except ImportError:  # Airflow 2.11
        raise RuntimeError("SMS webhook assets need Airflow 3 (the webhook receiver is an Airflow 3 plugin)") from None
    return Asset(uri=asset_uri(conn_id, kind), name=asset_name(conn_id, kind))


def inbound_sms_asset(conn_id: str) -> Any:
    """The asset a reply pushed to ``/sms/webhooks/<conn_id>/inbound`` (or ``/status``) is recorded on."""
    return _asset(conn_id, INBOUND)


def sms_status_asset(conn_id: str) -> Any:
    """The asset a delivery report pushed to ``/sms/webhooks/<conn_id>/status`` is recorded on."""
    return _asset(conn_id, STATUS)
