"""Sensors: wait for inbound SMS replies."""
