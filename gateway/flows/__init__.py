"""Each message family's flow: what the gateway decides about one decoded message of it (who
may send it, what it must hold, what it books, voids and correlates, what its translation
rewrites). A family's module in gateway/messages/ names its flow; the translation calls it
through the registry, with a `Flow` (base.py) holding what it may consult.
"""
