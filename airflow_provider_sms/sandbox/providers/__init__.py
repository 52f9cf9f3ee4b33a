"""The three providers' endpoints as the sandbox serves them, one module per provider.

Each handler checks the provider's documented auth header (answering 401 as the provider does),
validates the request as the docs describe (batch limits, number forms, sender IDs, media, schedule
format), stores what it accepts and answers with the documented response shape. ``common`` holds the
few request-reading helpers they share.
"""
