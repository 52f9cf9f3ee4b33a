"""Triggers: the deferrable sensor's poller and, on Airflow 3, the event trigger for ``AssetWatcher``."""
