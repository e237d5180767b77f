"""The Textual console: screens and widgets that render core state and send commands."""
