"""Checks at the edges: signed links, header values, URL and path policy, CSV cells."""
