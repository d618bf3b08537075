"""Email authentication: SPF, DKIM, DMARC, ARC and Authentication-Results.

Each scheme is its own module (``spf``, and later ``dkim``, ``dmarc``,
``arc``, ``results``), with its sans-I/O parsing in a private sibling
(``_spf_record``). DNS goes through :class:`mailio_trio.dns.Resolver`, so
every check can be aimed at the loopback test DNS server.
"""
