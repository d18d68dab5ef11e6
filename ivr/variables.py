"""Every channel variable the IVR sets or reads: the contract with the dialplans in dialplans/."""

# Set by the `tipline` handler: the decision. The dialplan owns the rest of the call (ring
# times, the meldkamer fallback, the voice-tip recording; see dialplans/tipline.conf).
DIAL = "BN_DIAL"  # where to put the caller through: an action's centralist, or the meldkamer
# Set by `tipline` (and `alert_call` when it puts a participant through) at the call's first AGI;
# the dialplan's hangup handler hands it back to `tipline_hangup`, which finishes only the tip
# record of the call the token was made for (ivr.context.IvrContext.call_token).
CALL_TOKEN = "BN_CALL_TOKEN"

# Set by the voice worker's AMI Originate for an alert call (dialplans/alert.conf), read by the
# `alert_call` handler.
MESSAGE_ID = "BN_MESSAGE_ID"  # the Message row this call delivers
AUDIO = "BN_AUDIO"  # the bulletin's audio: a path without extension, as Asterisk plays it
# Set by the `alert_call` handler, last: how the call ended ("" = the IVR failed, see alert.conf).
# BN_DIAL (above) is set as well when the participant asked to be put through.
ALERT_RESULT = "BN_ALERT_RESULT"  # listened | dial | audio-missing | unknown-message
# (`alert_voicemail`, an answering machine: voicemail | audio-missing | unknown-message)
