"""FastAGI server and its handlers for the 0800-0011 tip line and answered alert calls (arriving with the tip-line work)."""
