"""Ticket layout, printer backends and the ESC/POS emulator.

A leaf library: it knows ESC/POS (through python-escpos), the ways bytes reach
a printer, and how to render those bytes back to pixels. It imports nothing
else of Vuoro's.
"""
