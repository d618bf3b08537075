"""Email authentication: SPF, DKIM, DMARC, ARC and Authentication-Results.

Each scheme is its own module (``spf``, ``dkim``, ``arc``, ``dmarc``,
``results``), with its sans-I/O parsing in a private sibling (``_spf_record``,
``_dmarc_record``, ``_header_from``) and what DKIM and ARC share in ``_keys``.
DNS goes through :class:`mailio_trio.dns.Resolver`, so every check can be aimed
at the loopback test DNS server. SPF needs only the core dependencies; DKIM,
ARC and DMARC need the ``mailauth`` extra (dkimpy, publicsuffixlist).
"""
