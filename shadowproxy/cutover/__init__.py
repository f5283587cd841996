"""Cutover: who answers each route (modes, precedence, canary, rollback) and its records.

Pure route ownership (``state``), the rollback windows (``rollback``) and one
process's ownership control (``ownership``: the state file, the ``ownership``
records, automatic rollbacks). No aiohttp and nothing of the data planes: the
HTTP and gRPC edges ask it who answers, and the admin API changes it.
"""
