"""Relaying: the durable spool, retry schedule, MX delivery and DSN bounces.

``spool`` keeps accepted messages on disk, ``schedule`` is the pure retry
arithmetic, ``deliver`` talks to remote servers, ``bounce`` writes RFC 3464
reports and ``worker`` runs it all inside the server's nursery.
"""
