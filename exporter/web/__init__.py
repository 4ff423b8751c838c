"""The HTTP side: the listeners and what secures them.

`server` serves /metrics (the `Exposition` it is handed), the status page (`status`, rendered
from the latest snapshots) and the health and reload endpoints; `push` is the second listener,
which takes the vendor's call-record pushes and hands them to the call ledger; `webconfig` and
`basic_auth` read `--web.config.file` (TLS, basic auth, headers) for both.
"""
