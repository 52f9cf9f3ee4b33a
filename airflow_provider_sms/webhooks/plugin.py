"""``SmsWebhooksPlugin``: mounts the SMS webhook app on the Airflow API server (Airflow 3), and the SMS
page (``ui``) with its entry in Airflow's UI navigation (Airflow 3.1+).

Registered through the ``airflow.plugins`` entry point, so installing the package is all it takes.
Every Airflow component loads plugins, so this module imports nothing heavy: the FastAPI apps are built
only when the API server asks for ``fastapi_apps``. On Airflow 2.11 (no FastAPI API server) the plugin
offers nothing and changes nothing.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_sms.ui import URL_PREFIX as UI_PREFIX
from airflow_provider_sms.ui import URL_ROUTE as UI_ROUTE
from airflow_provider_sms.webhooks import URL_PREFIX


def _has_ui_plugins() -> bool:
    """Airflow 3.1+ shows plugins' external views in its UI navigation."""
    from airflow import __version__

    return tuple(int(part) for part in __version__.split(".")[:2]) >= (3, 1)


class SmsWebhooksPlugin(AirflowPlugin):
    """Replies and delivery reports pushed by the providers become asset events (see ``webhooks.app``);
    the SMS page (``ui.app``) shows sends, replies, opt-outs and spend in Airflow's UI."""

    name = "sms_webhooks"

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_provider_sms._compat import AIRFLOW_V_3

        if not AIRFLOW_V_3:
            return []
        if "app" not in self.__dict__:
            from airflow_provider_sms.webhooks.app import create_app

            self.__dict__["app"] = create_app()
        apps = [{"app": self.__dict__["app"], "url_prefix": URL_PREFIX, "name": "SMS webhooks"}]
        if _has_ui_plugins():
            if "ui_app" not in self.__dict__:
                from airflow_provider_sms.ui.app import create_app as create_ui_app

                self.__dict__["ui_app"] = create_ui_app()
            apps.append({"app": self.__dict__["ui_app"], "url_prefix": UI_PREFIX, "name": "SMS page"})
        return apps

    @property
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The SMS page in Airflow's navigation (``/plugin/sms``), served by the app at ``/sms/ui``."""
        from airflow_provider_sms._compat import AIRFLOW_V_3

        if not AIRFLOW_V_3 or not _has_ui_plugins():
            return []
        if "views" not in self.__dict__:  # one list: Airflow removes rejected entries from it in place
            view = {"name": "SMS", "href": f"{UI_PREFIX}/", "url_route": UI_ROUTE, "category": "browse"}
            self.__dict__["views"] = [{**view, "destination": "nav"}]
        views: list[dict[str, Any]] = self.__dict__["views"]
        return views
