"""Vuoro's own printer errors, so callers never see ``usb.core.USBError`` or
``socket.timeout`` and can tell a customer something true."""


class PrinterError(Exception):
    """Printing failed; the message is fit for a technician's log."""


class PrinterOffline(PrinterError):
    """The printer cannot be reached (unplugged, powered off, wrong address)."""


class PrinterTimeout(PrinterOffline):
    """The printer stopped taking bytes within the bounded timeout."""


class PaperOut(PrinterError):
    """The roll is empty."""


class CoverOpen(PrinterError):
    """The cover is open."""


class PrinterConfigError(PrinterError):
    """The printer section of the config names something impossible."""
