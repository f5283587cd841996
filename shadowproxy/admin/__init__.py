"""The admin API: metrics, health, status and the kill switch (``app``), cutover (``cutover``).

An aiohttp application on its own listener; it reads and flips the shadow
switch and route ownership, never the data planes.
"""
