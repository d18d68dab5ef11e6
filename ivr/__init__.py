"""The IVR: a FastAGI server (`ivr.server`) and its handlers (`ivr.handlers`), one per file.

Asterisk hands a call to a handler with `AGI(agi://<ivr>/<name>)`; the handler's name, its module
and the string in the dialplan are the same. Handlers answer by setting channel variables, whose
names live in `ivr.variables`.
"""
