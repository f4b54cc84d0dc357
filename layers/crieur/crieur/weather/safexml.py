"""XML parsing with the standard library only, refusing what feeds never need and attacks use.

expat drives an ElementTree TreeBuilder directly. A DOCTYPE (and so any entity declaration: billion laughs,
external entities) is refused outright, as is any reference to an external entity; a truncated or
ill-formed document raises UnsafeOrInvalidXml. Namespaced names come out as ElementTree's '{uri}local'.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final
from xml.parsers import expat

MAX_XML_BYTES: Final = 10 * 1024 * 1024


class UnsafeOrInvalidXml(ValueError):
    pass


def _name(raw: str) -> str:
    uri, separator, local = raw.rpartition("}")
    return f"{{{uri}}}{local}" if separator else raw


def parse_xml(data: bytes | str) -> ET.Element:
    if len(data) > MAX_XML_BYTES:
        raise UnsafeOrInvalidXml(f"document trop volumineux ({len(data)} octets)")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse_doctype(name: str, *_: object) -> None:
        raise UnsafeOrInvalidXml(f"DOCTYPE refusé ({name})")

    def refuse_entity(name: str, *_: object) -> None:
        raise UnsafeOrInvalidXml(f"déclaration d'entité refusée ({name})")

    def refuse_external(*_: object) -> int:
        raise UnsafeOrInvalidXml("entité externe refusée")

    def start(name: str, attributes: dict[str, str]) -> None:
        builder.start(_name(name), {_name(key): value for key, value in attributes.items()})

    def end(name: str) -> None:
        builder.end(_name(name))

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as broken:
        raise UnsafeOrInvalidXml(f"XML mal formé ou tronqué ({broken})") from broken
    return builder.close()
