"""Email authentication: SPF, DKIM, DMARC, ARC, Authentication-Results."""
