"""A delivery receipt as it arrived over a bind, made into the row the outcome writer stores.

Reading the receipt's text and what its state means are gateway/sms/inbound.py's (pure); this is
the step from a deliver_sm to a `ReceiptIn`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gateway.storage.models import MessageStatus

from . import pdu as P
from .inbound import parse_receipt, receipt_status
from .store import ReceiptIn


def judge_stat(stat: str, error: str | None = None) -> tuple[MessageStatus | None, str]:
    """(final status or None, detail) of a receipt's stat."""
    verdict = receipt_status(stat, error)
    if verdict is None:
        return None, stat
    status, detail = verdict
    return status, f"{detail} ({stat})" if detail else "delivered"


def receipt_in(
    operator: str, deliver: P.Deliver, received_at: datetime, ack: Callable[[int], None]
) -> ReceiptIn:
    """The receipt `deliver` (a deliver_sm flagged as one); raises BadReceipt when it says neither
    which message nor what became of it. `ack` sends its deliver_sm_resp, once it is written."""
    recipient = deliver.source.lstrip("+")
    smsc_id = deliver.tlvs.get(P.RECEIPTED_MESSAGE_ID, b"").rstrip(b"\0").decode("latin-1")
    state = deliver.tlvs.get(P.MESSAGE_STATE)
    if smsc_id and state is not None and int.from_bytes(state, "big") == P.STATE_DELIVERED:
        # The common case, from the TLVs alone: the text's dates are not needed (final_at is
        # when the gateway learned it).
        delivered = MessageStatus.delivered
        return ReceiptIn(
            operator,
            smsc_id,
            "DELIVRD",
            delivered,
            "delivered",
            None,
            received_at,
            recipient,
            ack,
            (smsc_id,),
        )
    receipt = parse_receipt(deliver.short_message.decode("latin-1"), dict(deliver.tlvs))
    status, detail = judge_stat(receipt.stat, receipt.error)
    return ReceiptIn(
        operator,
        receipt.smsc_message_id,
        receipt.stat,
        status,
        detail,
        receipt.done_at,
        received_at,
        recipient,
        ack,
        receipt.id_candidates(),
    )
