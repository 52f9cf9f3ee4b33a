"""``SmsWebhooksPlugin``: mounts the SMS webhook app on the Airflow API server (Airflow 3).

Registered through the ``airflow.plugins`` entry point, so installing the package is all it takes.
Every Airflow component loads plugins, so this module imports nothing heavy: the FastAPI app is built
only when the API server asks for ``fastapi_apps``. On Airflow 2.11 (no FastAPI API server) the plugin
offers nothing and changes nothing.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_sms.webhooks import URL_PREFIX


class SmsWebhooksPlugin(AirflowPlugin):
    """Replies and delivery reports pushed by the providers become asset events (see ``webhooks.app``)."""

    name = "sms_webhooks"

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_provider_sms._compat import AIRFLOW_V_3

        if not AIRFLOW_V_3:
            return []
        if "app" not in self.__dict__:
            from airflow_provider_sms.webhooks.app import create_app

            self.__dict__["app"] = create_app()
        return [{"app": self.__dict__["app"], "url_prefix": URL_PREFIX, "name": "SMS webhooks"}]
