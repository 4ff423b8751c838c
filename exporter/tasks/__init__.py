"""The tasks source: the poller that reads every app's task list on its interval.

`poller.Poller` pages through taskList for each app with the account's client, publishes an
immutable `Snapshot` (exporter.snapshot) for the exposition, and then, with call outcomes on,
reads the app's call records into the call ledger. It also publishes each app's recent polls
(`history.AppHistory`) for the status page.
"""
