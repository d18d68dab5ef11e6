"""The 0800-0011 tip line: where a participant's call goes, and the log of every tip."""
