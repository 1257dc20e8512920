"""The polling engine: claim due shipments, ask carriers, record events, write them back."""
