"""The process runtime: one worker (``worker``, ``serve``) and ``--workers N`` (``supervisor``).

Builds the pieces of a worker, binds the listeners, handles signals, reload
and graceful stop. The top of the proxy's layers: it may import every other
package but the CLI.
"""
