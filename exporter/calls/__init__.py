"""The call-records source: every call counted once, from recordQuery reads and the push.

`ledger.CallLedger` takes records from recordQuery reads and from the push listener
(exporter.web.push), remembers each call id, and hands scrapes a frozen `counts.CallsSnapshot`;
`planner.CallReads` decides, for each poll the task poller starts, which recordQuery windows to
count and which to read (`known`: what recordQuery has listed; `selection`: what the records show
of its windows); `storage` keeps what the ledger needs to resume across a restart.
"""
