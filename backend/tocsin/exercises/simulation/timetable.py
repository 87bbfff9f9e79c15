"""What a live exercise fires, and in which order: the injects, the contingencies, the scripted player actions (with
`autoplay`) and the end, at their scenario times. Each has a key: the timeline entry it writes, once."""

from __future__ import annotations

from dataclasses import dataclass

from tocsin.exercises.scenario import Scenario, minutes

RANK = {"inject": 0, "contingency": 1, "scripted": 2, "end": 3}  # at the same second, in this order


@dataclass(frozen=True)
class Item:
    key: str
    seconds: float
    kind: str  # inject | contingency | scripted | end
    index: int  # inject number, contingency inject number, or scripted action index


def plan(scenario: Scenario, *, autoplay: bool) -> list[Item]:
    """What the exercise fires, in order. Scripted player actions only with `autoplay`: otherwise the players act,
    and a contingency fires when they do not."""
    items = [Item(f"inject:{i.number}", minutes(i.at) * 60.0, "inject", i.number) for i in scenario.timeline]
    items += [
        Item(f"contingency:{c.inject.number}", minutes(c.at) * 60.0, "contingency", c.inject.number)
        for c in scenario.contingencies
    ]
    if autoplay:
        items += [
            Item(f"scripted:{n}", minutes(a.at) * 60.0, "scripted", n) for n, a in enumerate(scenario.scripted_actions)
        ]
    items.append(Item("end", minutes(scenario.duration) * 60.0, "end", 0))
    return sorted(items, key=lambda item: (item.seconds, RANK[item.kind], item.index))
