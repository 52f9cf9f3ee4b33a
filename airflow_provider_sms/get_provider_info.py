"""Provider metadata for Airflow's ProvidersManager, loaded through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_sms import __version__
from airflow_provider_sms.connections import CONNECTION_TYPES

_INTEGRATION = "SMS (Cellcast, Clickatell, Cloudware)"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-sms",
        "name": "SMS",
        "description": "Send SMS, MMS and chat messages through Cellcast, Clickatell and Cloudware, "
        "and wait for or be triggered by inbound replies.",
        "versions": [__version__],
        "integrations": [{"integration-name": _INTEGRATION, "tags": ["service"]}],
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_sms.hooks.cellcast",
                    "airflow_provider_sms.hooks.clickatell",
                    "airflow_provider_sms.hooks.cloudware",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_sms.operators.send",
                    "airflow_provider_sms.operators.cellcast",
                    "airflow_provider_sms.operators.clickatell",
                    "airflow_provider_sms.operators.cloudware",
                    "airflow_provider_sms.operators.hitl",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_sms.sensors.inbound", "airflow_provider_sms.sensors.delivery"],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_sms.triggers.inbound",
                    "airflow_provider_sms.triggers.hitl",
                    "airflow_provider_sms.triggers.delivery",
                    "airflow_provider_sms.triggers.fallback",
                ],
            }
        ],
        "connection-types": [dict(spec) for spec in CONNECTION_TYPES.values()],
        "notifications": ["airflow_provider_sms.notifications.sms.SmsNotifier"],
        # MessageQueueTrigger(scheme="sms"): read by apache-airflow-providers-common-messaging when installed.
        "queues": ["airflow_provider_sms.queues.SmsMessageQueueProvider"],
        # Also an ``airflow.plugins`` entry point: that loads it with Airflow's default lazy provider discovery.
        # ``airflow sms opt-outs ...`` on Airflow 3.3+ (older Airflow ignores it: ``airflow-sms opt-outs ...``).
        "cli": ["airflow_provider_sms.cli.get_cli_commands"],
        "plugins": [{"name": "sms_webhooks", "plugin-class": "airflow_provider_sms.webhooks.plugin.SmsWebhooksPlugin"}],
    }
