"""The crisis glossary: shared multilingual terminology for responders and citizens.

Owns the concepts (content in `glossary/`, loaded through `schemas.Concept`), their versions and the change proposals
a glossary editor approves or rejects; search across the nine languages; SKOS (Turtle, JSON-LD) and CSV export and
import; and the lint that points an operator at deprecated, non-preferred and hard-to-understand terms in a text or an
alert. The files in `glossary/` stay the reviewed source: the approved state can be written back to them.
"""
