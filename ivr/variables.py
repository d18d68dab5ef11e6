"""Every channel variable the IVR sets or reads: the contract with the dialplans in dialplans/."""

# Set by the `tipline` handler: the decision. The dialplan owns the rest of the call (ring
# times, the meldkamer fallback, the voice-tip recording; see dialplans/tipline.conf).
DIAL = "BN_DIAL"  # where to put the caller through: an action's centralist, or the meldkamer
ACTION_ID = "BN_ACTION_ID"  # the action the tip is about ("" when none)
