"""SMS over SMPP: encoding now; binds, routing and workers later."""
