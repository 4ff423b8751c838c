"""Prometheus exporter for the ITNIO AI-voice (outbound call robot) API."""

__version__ = "0.1.0"
