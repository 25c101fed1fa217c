"""The touchscreen app: Kivy screens over the state DB and the printer.

It never does network I/O; the sync daemon does that, through the state DB.
"""
