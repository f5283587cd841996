"""The proxy edge: aiohttp server and clients, the hot path and the shadow path."""
