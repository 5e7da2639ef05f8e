"""Conversations, the message tree and its current branch, and shared snapshots."""
