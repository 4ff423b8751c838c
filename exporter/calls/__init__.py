"""The call-records source: every call counted once, from recordQuery reads and the push.

`ledger.CallLedger` takes records from the task poller's recordQuery reads and from the push
listener (exporter.web.push), remembers each call id, and hands scrapes a frozen
`counts.CallsSnapshot`; `storage` keeps what the ledger needs to resume across a restart.
"""
