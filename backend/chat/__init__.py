"""Chat turns: accepting a message, generating its answer apart from any connection, and streaming it."""
