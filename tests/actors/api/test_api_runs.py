"""The run endpoints of the request API: status, proceed and resume over NATS."""

from __future__ import annotations

import pytest

from actors import Runtime, TracksClient
from actors.runtime.request_api import ApiError, call
from tests.actors.coordination.test_coordination_phases import reviewed
from tests.support.waiting import eventually


async def test_status_and_proceed_over_nats(settings, pool, nc, unique):
    wf = reviewed(unique)
    async with Runtime(list(wf), settings=settings):
        cid = await TracksClient(nc).start(wf, {"count": 5})

        async def at_gate() -> bool:
            try:
                return (await call(nc, "status", {"correlationId": cid}))["canProceed"] is True
            except ApiError as exc:  # the run row appears with its first step's claim
                assert exc.code == 404
                return False

        await eventually(at_gate, what="the run to reach its manual gate")
        state = await call(nc, "status", {"correlationId": cid})
        assert state["currentPhase"] == "review"
        assert state["requiresManualTrigger"] is True
        assert state["completedPhases"] == ["intake"]
        released = await call(nc, "proceed", {"correlationId": cid})
        assert released == {"correlationId": cid, "releasedPhase": "review", "started": [f"{unique}-book"]}

        async def done() -> bool:
            return (await call(nc, "status", {"correlationId": cid}))["status"] == "completed"

        await eventually(done, what="the run to complete")
        with pytest.raises(ApiError, match="already completed") as err:
            await call(nc, "resume", {"correlationId": cid})
        assert err.value.code == 409
        with pytest.raises(ApiError, match="no workflow run") as missing:
            await call(nc, "status", {"correlationId": "nobody"})
        assert missing.value.code == 404
