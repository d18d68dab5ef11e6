"""Spoken alerts: the voice worker's side of Asterisk (the AMI connection lives in `ami`)."""
