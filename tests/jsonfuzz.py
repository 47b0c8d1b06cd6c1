"""One mutation step of the seeded JSON fuzzers (installer and builder adversarial tests share it)."""

from __future__ import annotations

import copy
import random
from typing import Any


def mutate(rng: random.Random, doc: Any, odd: list[Any], max_repeat: int, depth: int = 0) -> Any:
    """One random change deep in a JSON document: a value replaced by one of `odd`, a key dropped, a list
    repeated up to `max_repeat` times (or emptied), a dict turned into a list, or a nested change."""
    doc = copy.deepcopy(doc)
    node, path = doc, []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
        key = rng.choice(sorted(node) if isinstance(node, dict) else range(len(node)))
        path.append((node, key))
        node = node[key]
    if not path:
        return rng.choice(odd + [doc])
    parent, key = path[-1]
    r = rng.random()
    if r < 0.55:
        parent[key] = copy.deepcopy(rng.choice(odd))
    elif r < 0.7 and isinstance(parent, dict):
        del parent[key]
    elif r < 0.8 and isinstance(parent[key], list):
        parent[key] = parent[key] * rng.randint(0, max_repeat)
    elif r < 0.9 and isinstance(parent[key], dict):
        parent[key] = list(parent[key].items())
    else:
        parent[key] = mutate(rng, parent[key], odd, max_repeat, depth + 1) if depth < 3 else None
    return doc
