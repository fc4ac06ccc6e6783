"""stackdeck: a keyboard-driven terminal operations console for the
Investment Analysis Platform.

``console.core`` is everything that is not UI (settings, snapshot models,
sources, the monitor, operations) and never imports textual;
``console.ui`` is the Textual app; ``console.cli`` the ``stackdeck`` command.
"""

__version__ = "0.1.0"
