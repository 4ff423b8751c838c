"""The balance source: each account's getBalance, read once per interval, however many apps.

`read` asks the API and checks its answer; `poller` schedules the reads, applies the stale rule
and hands the exposition a frozen `BalanceSnapshot`.
"""
