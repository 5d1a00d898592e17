"""Recognitions: photos recognized, feedback on them, and recognition settings."""
