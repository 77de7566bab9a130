"""Dependencies of the orders API: the order a path names, loaded and authorised once."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from order_service.domain.errors import OrderNotFound
from order_service.domain.orders import order_for
from order_service.store.orders import OrderRecord
from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep


async def valid_order_id(
    order_id: Annotated[str, Path(description="The order's id (UUID)")],
    principal: CurrentPrincipal,
    session: SessionDep,
) -> OrderRecord:
    """The order, if it exists and the caller owns it or is an admin; 404 otherwise."""
    try:
        parsed = uuid.UUID(order_id)
    except ValueError:
        # An id that cannot exist is simply not found; same answer as someone else's order.
        raise OrderNotFound("No such order") from None
    return await order_for(session=session, order_id=parsed, principal=principal)


ValidOrder = Annotated[OrderRecord, Depends(valid_order_id)]
