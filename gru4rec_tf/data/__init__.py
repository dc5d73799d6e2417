"""Session data: event logs, canonical columns, the item vocabulary, SessionData, the built-in dataset."""
