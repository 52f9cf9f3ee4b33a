"""Notifiers for Airflow callbacks."""
