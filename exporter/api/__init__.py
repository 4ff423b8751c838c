"""The API client: everything that talks to the vendor's API, and nothing that keeps state
between polls.

`client.ApiClient` is one account's client (its rate limit, retries, and reads that can be
trusted); it writes requests and reads answers with `wire` (signing, page parsing, no network)
and `records` (call records, with no personal data), sends them through `transport` (one
bounded HTTP attempt), reads every page of an endpoint with `paging`, says what a read found
with `reads`, and counts every request in `stats`. It hands the sources a `TaskRead`, a
`CallRead` or a balance document, and the exposition the `RequestStats`.
"""
