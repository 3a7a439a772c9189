"""Agents: the roster, immutable config snapshots, the revision log, and workflow node bindings.

`service` holds the agent use cases and the building blocks of every save, `versions` the saves
and the version history, `bindings` the node bindings and `resolve_binding` (what a node run
starts from), `repository` their SQL, `schemas` the HTTP request and response models.
"""
