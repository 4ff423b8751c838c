"""Reading an app's line names (channelList) into the ledger, when they are due.

The poller calls `read_lines` in the app's poll thread after its calls: the ledger says whether
a read is due (see exporter.calls.lines), so most polls send nothing. A failed read keeps the
names the ledger has and never touches the app's `aivoice_up` or its call counts.
"""

from __future__ import annotations

import logging

from exporter.api.client import ApiClient
from exporter.calls.ledger import CallLedger
from exporter.codes import PollError, explain

# The logger the call-outcome lines share: "exporter.calls".
log = logging.getLogger("exporter.calls")


def read_lines(ledger: CallLedger, client: ApiClient, app_id: str, deadline: float) -> bool:
    """Read the app's lines into the ledger if they are due, and say whether it did; a failure
    is logged when it starts or changes (repeats go to the debug log) and costs nothing but the
    read."""
    if not ledger.lines_due(app_id):
        return False
    try:
        lines = client.read_lines(app_id, deadline)
    except PollError as err:
        previous = ledger.lines_failed(app_id, err.code)
        fields = {"app_id": app_id, "code": err.code, "explanation": explain(err.code)}
        if err.detail:
            fields["detail"] = err.detail
        level = logging.DEBUG if previous == err.code else logging.WARNING
        log.log(level, "Reading the app's lines failed; their names are kept", extra=fields)
        return True
    if ledger.lines_read(app_id, lines) is not None:
        log.info("Reading the app's lines recovered", extra={"app_id": app_id})
    if lines.skipped:
        log.debug("Line entries skipped", extra={"app_id": app_id, "skipped": lines.skipped})
    return True
