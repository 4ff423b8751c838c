"""Task records as the taskList API sends them, for tests that pin an app's tasks."""

from __future__ import annotations

from typing import Any


def record(job_id: int, **fields: Any) -> dict[str, Any]:
    """A complete, valid record; `fields` override any of its keys."""
    return {
        "jobId": job_id,
        "name": f"task {job_id}",
        "dialogFlowName": "flow",
        "jobPhoneNumberName": "line63",
        "robotCount": 2,
        "mode": "AUTO",
        "hangupSms": False,
        "taskTotal": 100,
        "taskCompleted": 40,
        "status": "IN_PROCESS",
        "isDialogFlowUnbind": False,
        "createTime": "2022-09-20 16:57:04",
        **fields,
    }
