"""Element-by-element comparison of two CAP 1.2 documents, for round-trip tests.

Texts must be equal, except where CAP's own types make two spellings the same value: times (same instant and offset;
"-00:00" is "+00:00"), polygon/circle coordinates and decimals (same numbers). XML signatures are left out: an export is
a new serialisation and the sender's signature cannot cover it (the original stays available verbatim).
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from tocsin.alerts.cap import CAP12_NS

TIMES = {"sent", "effective", "onset", "expires"}
NUMBERS = {"altitude", "ceiling", "size"}


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.replace(",", " ").split()]


def _same(name: str, a: str, b: str) -> bool:
    if name in TIMES:
        x, y = datetime.fromisoformat(a.strip()), datetime.fromisoformat(b.strip())
        return x == y and x.utcoffset() == y.utcoffset()
    if name in ("polygon", "circle") or name in NUMBERS:
        return _numbers(a) == _numbers(b)
    return a == b


def differences(original: etree._Element, exported: etree._Element, path: str = "alert") -> list[str]:
    found: list[str] = []
    a_children = [c for c in original if isinstance(c.tag, str) and etree.QName(c).namespace == CAP12_NS]
    b_children = [c for c in exported if isinstance(c.tag, str) and etree.QName(c).namespace == CAP12_NS]
    a_names = [etree.QName(c).localname for c in a_children]
    b_names = [etree.QName(c).localname for c in b_children]
    if a_names != b_names:
        return [f"{path}: children {a_names} != {b_names}"]
    if not a_children:
        name = etree.QName(original).localname
        if not _same(name, original.text or "", exported.text or ""):
            found.append(f"{path}: {original.text!r} != {exported.text!r}")
    counts: dict[str, int] = {}
    for a, b in zip(a_children, b_children, strict=True):
        name = etree.QName(a).localname
        index = counts.get(name, 0)
        counts[name] = index + 1
        found += differences(a, b, f"{path}/{name}[{index}]")
    return found
