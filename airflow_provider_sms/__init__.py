"""Apache Airflow provider for SMS, MMS and chat messages."""

__version__ = "0.2.0"
