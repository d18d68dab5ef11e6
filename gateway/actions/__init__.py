"""Actions (Burgernetacties): their lifecycle and the wording of what they send."""
