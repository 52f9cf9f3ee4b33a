"""Apache Airflow provider for SMS, MMS and chat messages."""
