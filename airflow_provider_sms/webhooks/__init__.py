"""The SMS webhook receiver (Airflow 3): providers push replies and delivery reports into Airflow.

``plugin`` mounts ``app`` on the Airflow API server at ``/sms/webhooks``; ``receiver`` checks each call
(secret, size, content type) and reads it with the connection's hook; ``recorder`` turns what it read
into asset events on ``inbound_sms_asset(conn_id)`` and ``sms_status_asset(conn_id)``.
"""

URL_PREFIX = "/sms/webhooks"
