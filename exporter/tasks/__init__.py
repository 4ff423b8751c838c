"""Polling the apps' task lists: the poller, and the history of each app's recent polls."""
