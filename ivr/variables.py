"""Every channel variable the IVR sets or reads: the contract with the dialplans in dialplans/."""

# Set by the `tipline` handler.
DIAL = "BN_DIAL"  # where to put the caller through first (a centralist, or the meldkamer)
DIAL_TIMEOUT = "BN_DIAL_TIMEOUT"  # seconds to let it ring before falling back
MELDKAMER = "BN_MELDKAMER"  # the fallback when the first dial is not answered
ACTION_ID = "BN_ACTION_ID"  # the action the tip belongs to ("" when unknown)
RECORDING = "BN_RECORDING"  # where a voice tip is recorded when nobody answers (no extension)

# Set by the dialplan, read by `tipline_hangup` (passed as AGI arguments).
ROUTED_TO = "BN_ROUTED_TO"  # the dial string of the last Dial()
