"""The end of the middleware chain: the step's input resolved and validated, the handler run, its
output kept.

Payloads over the size threshold travel by reference (claim check): references are resolved
here, and a large output is stored before the ledger or the event see it. Input that does not
match the track's model is a :class:`PoisonMessage` (dead-lettered on its first delivery).
"""

from __future__ import annotations

from pydantic import ValidationError

from actors.errors import PoisonMessage
from actors.middleware.base import Completed, Step
from actors.track import Track
from actors.transport.payloads import PayloadStore, is_ref

__all__ = ["HandlerCall"]


class HandlerCall:
    __slots__ = ("_payloads", "_track")

    def __init__(self, track: Track, payloads: PayloadStore) -> None:
        self._track = track
        self._payloads = payloads

    async def __call__(self, step: Step) -> Completed:
        track = self._track
        inputs = step.claim.inputs if step.claim is not None else None
        raw = inputs if inputs is not None else step.activation.payload
        if inputs is not None:  # fan-in: each upstream's output may be a reference
            raw = {
                name: await self._payloads.resolve(out) if is_ref(out) else out
                for name, out in inputs.items()
            }
        elif is_ref(raw):
            raw = await self._payloads.resolve(raw)
        try:
            value = track.parse_input(raw)
        except ValidationError as exc:
            raise PoisonMessage(
                f"payload does not match {track.input_model.__name__}: "  # type: ignore[union-attr]
                f"{_summary(exc)}"
            ) from None
        result = await track.handler(step.ctx, value)
        return Completed(
            await self._payloads.offload(step.ctx.correlation_id, track.name, track.dump_output(result))
        )


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}" for e in exc.errors()[:5]
    )
