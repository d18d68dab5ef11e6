# TEMPORARY local stand-in (untracked, never committed): the real module comes from branch smsc.
from dataclasses import dataclass
from datetime import datetime
from gateway.storage.models import MessageStatus

@dataclass(frozen=True)
class Receipt:
    smsc_message_id: str
    stat: str
    done_at: datetime | None
    error: str

def parse_receipt(text, tlvs):
    fields = dict(p.split(":", 1) for p in text.replace("submit date", "submit_date").replace("done date", "done_date").split(" ") if ":" in p)
    mid = tlvs.get(0x001E) or fields.get("id")
    if not mid:
        return None
    return Receipt(str(mid), fields.get("stat", "UNKNOWN"), None, fields.get("err", ""))

def receipt_status(stat):
    if stat == "DELIVRD":
        return MessageStatus.delivered, "delivered"
    if stat in ("ENROUTE", "ACCEPTD"):
        return None, stat
    return MessageStatus.failed, f"{stat.lower()} ({stat})"

def handle_mo(session, sender, text, now):
    return None
